// Uploads one file with tus-js-client under Node, sending a bearer token as README "Authorization" shows, and
// prints one JSON line about how it ended: {url, done: true}, or {url, error, status, body} when it failed.
//
// Usage: node auth_upload.mjs <endpoint> <file> <token> [uploadUrl]
//   with uploadUrl: resume that upload only (no endpoint: tus-js-client would create a new upload instead when
//   its HEAD is refused), so a refusal reaches the test.
// Exit code 0 whenever the line was printed (the test decides whether a refusal was expected).
import fs from 'node:fs'
import { Upload } from 'tus-js-client'

const [endpoint, path, token, uploadUrl = null] = process.argv.slice(2)
const file = fs.readFileSync(path)

function finish(result) {
  process.stdout.write(`${JSON.stringify({ url: upload.url, ...result })}\n`)
  process.exit(0)
}

const upload = new Upload(file, {
  endpoint: uploadUrl ? null : endpoint,
  uploadUrl,
  headers: { Authorization: `Bearer ${token}` },
  chunkSize: 64 * 1024,
  retryDelays: null, // a refusal must reach the test, not be retried away
  storeFingerprintForResuming: false,
  onSuccess() {
    finish({ done: true })
  },
  onError(error) {
    const response = error.originalResponse ?? null
    finish({ error: error.message, status: response?.getStatus() ?? null, body: response?.getBody() ?? null })
  },
})

upload.start()
