"""The upload page (`tusserver --ui`): Uppy's Dashboard and tus plugin, served from the package's own files."""

from tusserver.ui.page import CONTENT_SECURITY_POLICY, UploadPage

__all__ = ["CONTENT_SECURITY_POLICY", "UploadPage"]
