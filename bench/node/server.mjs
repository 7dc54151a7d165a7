// The benchmark peer: @tus/server with @tus/file-store on 127.0.0.1.
// Usage: node server.mjs --port PORT --dir DIRECTORY   (uploads are served under /files/)
import { parseArgs } from 'node:util';
import { FileStore } from '@tus/file-store';
import { Server } from '@tus/server';

const { values } = parseArgs({
  options: {
    port: { type: 'string' },
    dir: { type: 'string' },
    host: { type: 'string', default: '127.0.0.1' },
  },
});
if (!values.port || !values.dir) {
  console.error('usage: node server.mjs --port PORT --dir DIRECTORY');
  process.exit(2);
}

const server = new Server({
  path: '/files',
  datastore: new FileStore({ directory: values.dir }),
});
const http = server.listen({ host: values.host, port: Number(values.port) }, () => {
  console.log(`tus-node listening on ${values.host}:${values.port}`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    http.close();
    http.closeAllConnections();
    process.exit(0);
  });
}
