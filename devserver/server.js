// Local NocoDB for the demo, the integration tests and CI (started by scripts/nocodb-dev).
//
// The nocodb npm package has no `bin`; this mirrors NocoDB's own src/run/docker.ts:
// an express app listens first, then Noco.init() mounts NocoDB on it. The socket opens
// before init ends, so callers wait for GET /api/v1/health to answer 200.
//
// nocodb and express are resolved from NOCODB_DEV_MODULES (the cached node_modules folder
// outside the checkout), falling back to normal resolution. Configuration comes from the
// environment: NC_DB, NC_TOOL_DIR, NC_AUTH_JWT_SECRET... (read by NocoDB itself), plus
// HOST (default 127.0.0.1: never expose the dev server) and PORT (default 8080).
'use strict';

const path = require('path');

function load(name) {
  const modules = process.env.NOCODB_DEV_MODULES;
  if (modules) {
    return require(require.resolve(name, { paths: [path.resolve(modules, '..')] }));
  }
  return require(name);
}

async function main() {
  const express = load('express');
  const { Noco } = load('nocodb');
  const host = process.env.HOST || '127.0.0.1';
  const port = Number.parseInt(process.env.PORT || '8080', 10);

  const app = express();
  app.disable('x-powered-by');
  const httpServer = app.listen(port, host, () => {
    console.log(`nocodb-dev: listening on http://${host}:${port} (initialising NocoDB)`);
  });
  httpServer.on('error', (err) => {
    console.error(`nocodb-dev: cannot listen on ${host}:${port}: ${err.message}`);
    process.exit(1);
  });
  app.use(await Noco.init({}, httpServer, app));
  console.log('nocodb-dev: NocoDB ready');

  const stop = (signal) => {
    console.log(`nocodb-dev: ${signal} received, closing`);
    httpServer.close(() => process.exit(0));
    // Keep-alive sockets can hold close() open; do not linger past a few seconds.
    setTimeout(() => process.exit(0), 3000).unref();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch((err) => {
  console.error('nocodb-dev: start-up failed:', err);
  process.exit(1);
});
