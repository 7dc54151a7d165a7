// tus-js-client under Node, the peer client of bench/client.py: uploads one file, prints one JSON line.
// Usage: node client_upload.mjs ENDPOINT FILE CHUNK_SIZE
// Output: {"seconds": <from start() to onSuccess>, "cpu_s": <this process, same span>, "url": "..."}
import fs from 'node:fs';
import path from 'node:path';
import { Upload } from 'tus-js-client';

const [endpoint, file, chunkSize] = process.argv.slice(2);
const started = performance.now();
const cpuStart = process.cpuUsage();
const upload = new Upload(fs.createReadStream(file), {
  endpoint,
  chunkSize: Number(chunkSize),
  uploadSize: fs.statSync(file).size,
  retryDelays: null,
  storeFingerprintForResuming: false,
  metadata: { filename: path.basename(file), filetype: 'application/octet-stream' },
  onSuccess() {
    const cpu = process.cpuUsage(cpuStart);
    const seconds = (performance.now() - started) / 1000;
    process.stdout.write(`${JSON.stringify({ seconds, cpu_s: (cpu.user + cpu.system) / 1e6, url: upload.url })}\n`);
    process.exit(0);
  },
  onError(error) {
    process.stderr.write(`${error}\n`);
    process.exit(1);
  },
});
upload.start();
