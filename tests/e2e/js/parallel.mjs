// Uploads one file with tus-js-client's `parallelUploads` under Node, used the way the README shows it,
// and prints one JSON line about what happened.
//
// Usage: node parallel.mjs <endpoint> <file> [parts]      (parts defaults to 4)
//
// The Upload is built exactly like the README's snippet: an fs.ReadStream of the file (tus-js-client 4 turns a
// ReadStream that has a path into a file source it can slice, one ReadStream per part), `parallelUploads`,
// `metadata` and `onSuccess`/`onError`; nothing else changes how it uploads. Only onBeforeRequest and
// onAfterResponse are added, to record the requests (they are copied into every partial upload, so the
// partials' requests are recorded too). tus-js-client's default retries stay on; a retried request shows up
// in `requests` with its failing status, so the test still sees it.
//
// Output: {url, size, partials: [partial URLs in the final's Upload-Concat], requests: [{method, url,
// uploadConcat, uploadLength, uploadOffset, status, location, responseOffset, responseConcat}], done|error}
// Exit code 0 on success, 1 on an upload error, 2 on bad usage.
import fs from 'node:fs'
import path from 'node:path'
import * as tus from 'tus-js-client'

const [endpoint, file, partsText = '4'] = process.argv.slice(2)
if (!endpoint || !file) {
  process.stderr.write('usage: node parallel.mjs <endpoint> <file> [parts]\n')
  process.exit(2)
}

const requests = []
const pending = new Map() // tus-js-client request object -> its record (requests overlap, so no "last one")

function finish(result, exitCode = 0) {
  const final = requests.find((request) => request.method === 'POST' && request.uploadConcat?.startsWith('final;'))
  const partials = final ? final.uploadConcat.slice('final;'.length).trim().split(/\s+/) : []
  const size = fs.statSync(file).size
  process.stdout.write(`${JSON.stringify({ url: upload.url, size, partials, requests, ...result })}\n`)
  process.exit(exitCode)
}

const upload = new tus.Upload(fs.createReadStream(file), {
  endpoint,
  parallelUploads: Number(partsText),
  metadata: { filename: path.basename(file) },
  onBeforeRequest(req) {
    const record = {
      method: req.getMethod(),
      url: req.getURL(),
      uploadConcat: req.getHeader('Upload-Concat') ?? null,
      uploadLength: req.getHeader('Upload-Length') ?? null,
      uploadOffset: req.getHeader('Upload-Offset') ?? null,
    }
    requests.push(record)
    pending.set(req, record)
  },
  onAfterResponse(req, res) {
    Object.assign(pending.get(req) ?? {}, {
      status: res.getStatus(),
      location: res.getHeader('Location') ?? null,
      responseOffset: res.getHeader('Upload-Offset') ?? null,
      responseConcat: res.getHeader('Upload-Concat') ?? null,
    })
    pending.delete(req)
  },
  onError(error) {
    finish({ error: String(error) }, 1)
  },
  onSuccess() {
    finish({ done: true })
  },
})

upload.start()
