"""The embedded defaults: files and state under ./data.

Run: uvicorn examples.minimal:app --port 8080
"""

from tusserver import Settings, create_app

app = create_app(Settings(data_dir="data", max_size=10 * 1024**3))
