// Uploads one file with tus-js-client under Node and prints one JSON line about what happened.
//
// Usage: node upload.mjs <endpoint> <file> <chunkSize> <mode> [uploadUrl]
//   mode "full":      upload the whole file.
//   mode "interrupt": once the first chunk is acknowledged, abort the next PATCH as soon as its body
//                     starts streaming (tus-js-client's first progress event for it), and stop.
//                     Node has usually not flushed that PATCH yet, so the server may never see it;
//                     disconnects in the middle of a body are tested with raw sockets (test_disconnect.py).
//   mode "resume":    like "full", but continue the upload at uploadUrl (tus-js-client sends HEAD first).
// Output: {url, acknowledged, requests: [{method, offset, status, responseOffset}], done|aborted|error}
// Exit code 0 on success or a deliberate abort, 1 on an upload error.
import fs from 'node:fs'
import { Upload } from 'tus-js-client'

const [endpoint, path, chunkSizeText, mode = 'full', uploadUrl = null] = process.argv.slice(2)
const requests = []
let acknowledged = 0
let aborting = false

function finish(result, exitCode = 0) {
  process.stdout.write(`${JSON.stringify({ url: upload.url, acknowledged, requests, ...result })}\n`)
  process.exit(exitCode)
}

const upload = new Upload(fs.createReadStream(path), {
  endpoint,
  uploadUrl,
  chunkSize: Number(chunkSizeText),
  uploadSize: fs.statSync(path).size,
  retryDelays: null, // a failure must show up in the test, not be retried away
  storeFingerprintForResuming: false,
  metadata: { filename: 'upload.bin', filetype: 'application/octet-stream' },
  onBeforeRequest(req) {
    requests.push({ method: req.getMethod(), offset: req.getHeader('Upload-Offset') ?? null })
  },
  onAfterResponse(_req, res) {
    Object.assign(requests.at(-1), { status: res.getStatus(), responseOffset: res.getHeader('Upload-Offset') ?? null })
  },
  onChunkComplete(_chunkSize, bytesAccepted) {
    acknowledged = bytesAccepted
  },
  onProgress(bytesSent) {
    if (mode === 'interrupt' && !aborting && acknowledged > 0 && bytesSent > acknowledged) {
      aborting = true
      upload.abort().then(() => finish({ aborted: true, sentAtAbort: bytesSent }))
    }
  },
  onSuccess() {
    finish({ done: true })
  },
  onError(error) {
    finish({ error: String(error) }, 1)
  },
})

upload.start()
