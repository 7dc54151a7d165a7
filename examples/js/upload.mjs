// Upload a file with tus-js-client under Node; run it again after an interruption (Ctrl-C, a crash, a lost
// network) and it resumes where the server stopped, from the upload URL it kept in .tus-uploads.json.
//
// Run: node upload.mjs FILE [http://127.0.0.1:8080/files/] [--parallel 4]
// (once: `npm ci` in examples/js; a server: `tusserver`; --parallel needs the concatenation extension, which the
// default local storage has: the file goes up as 4 partial uploads at once, joined by the server.)
import fs from 'node:fs'
import { FileUrlStorage, Upload } from 'tus-js-client'

const args = process.argv.slice(2)
const parallelAt = args.indexOf('--parallel')
const parallelUploads = parallelAt >= 0 ? Number(args.splice(parallelAt, 2)[1]) : 1
const [path, endpoint = 'http://127.0.0.1:8080/files/'] = args
if (!path) {
  console.error('usage: node upload.mjs FILE [ENDPOINT] [--parallel N]')
  process.exit(2)
}

const upload = new Upload(fs.createReadStream(path), { // read by ranges of the file, not into memory
  endpoint,
  parallelUploads,
  metadata: { filename: path.split('/').pop(), filetype: 'application/octet-stream' },
  urlStorage: new FileUrlStorage('.tus-uploads.json'), // where the URLs to resume are kept, keyed by file
  removeFingerprintOnSuccess: true,
  retryDelays: [0, 1000, 3000, 5000],
  onProgress (sent, total) {
    console.log(`progress ${sent} ${total}`)
  },
  onError (error) {
    console.error(`failed: ${error.message}`)
    process.exit(1)
  },
  onSuccess () {
    console.log(`done ${upload.url}`)
  }
})

const previous = await upload.findPreviousUploads()
if (previous.length > 0) {
  console.log(`resuming ${previous[0].uploadUrl ?? 'parallel upload'}`)
  upload.resumeFromPreviousUpload(previous[0])
}
process.on('SIGINT', async () => { // stop cleanly; the next run resumes
  await upload.abort()
  console.log('stopped')
  process.exit(130)
})
upload.start()
