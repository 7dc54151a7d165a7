// Uploads one file with tus-js-client under Node, with the metadata given, and prints one JSON line about
// how it ended: {url, done: true}, or {url, error, status, body} when it failed: `error` is the message
// tus-js-client gives the application, `status` and `body` the server's answer it is about (or null).
//
// Usage: node hooks_upload.mjs <endpoint> <file> <metadata as a JSON object>
// Exit code 0 whenever the line was printed (the test decides whether a refusal was expected).
import fs from 'node:fs'
import { Upload } from 'tus-js-client'

const [endpoint, path, metadataText] = process.argv.slice(2)

function finish(result) {
  process.stdout.write(`${JSON.stringify({ url: upload.url, ...result })}\n`)
  process.exit(0)
}

const upload = new Upload(fs.readFileSync(path), {
  endpoint,
  metadata: JSON.parse(metadataText),
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
