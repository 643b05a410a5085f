// The worker's status page at `/ui`: static HTML, CSS and browser JavaScript from
// runtime/status-page/, served by the REST server itself on the same listener and behind the same
// hooks (basic auth, client certificates), so it needs no build step and nothing from the internet.
// The page reads only the public REST API (`GET /connectors?expand=status&expand=info`,
// `GET /metrics`, `GET /`, `GET /health`) and its buttons call the same API a script would.
//
// Paths: `/ui` redirects to `/ui/` so the page can use relative URLs (`status-page.js`,
// `../connectors`), which keeps it working behind a reverse proxy that adds a path prefix.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

/** The page's files and their media types; nothing outside this list is served. */
const ASSETS: Readonly<Record<string, string>> = {
  'index.html': 'text/html; charset=utf-8',
  'status-page.css': 'text/css; charset=utf-8',
  'status-page.js': 'text/javascript; charset=utf-8',
  'metrics-text.js': 'text/javascript; charset=utf-8',
  'favicon.svg': 'image/svg+xml',
};

/**
 * Where the files are: beside this module when it runs from source (tsx), and the source folder
 * when it runs compiled from dist/runtime/ (tsc copies no assets).
 */
const CANDIDATE_FOLDERS = [
  fileURLToPath(new URL('./status-page/', import.meta.url)),
  fileURLToPath(new URL('../../runtime/status-page/', import.meta.url)),
];

// The page runs only its own files and talks only to the worker; no other site may frame it
// (its buttons change connectors) or read it.
const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; " +
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  // Small files; always revalidate so a worker upgrade is seen at the next load.
  'cache-control': 'no-cache',
};

type LoadedAssets = { folder: string; files: Map<string, Buffer> } | { missing: string[] };
let loaded: LoadedAssets | undefined;

/** Reads the files once per process; they are a few kilobytes. */
function loadAssets(): LoadedAssets {
  if (loaded) return loaded;
  const folder = CANDIDATE_FOLDERS.find((candidate) =>
    Object.keys(ASSETS).every((name) => existsSync(join(candidate, name))),
  );
  loaded = folder
    ? {
        folder,
        files: new Map(Object.keys(ASSETS).map((name) => [name, readFileSync(join(folder, name))])),
      }
    : { missing: CANDIDATE_FOLDERS };
  return loaded;
}

/**
 * Adds `GET /ui`, `GET /ui/` and `GET /ui/<asset>` to `app`. Call it where the REST routes are
 * registered, after the security hooks, so the page gets exactly the API's authentication.
 */
export function registerStatusPage(app: FastifyInstance): void {
  const send = (name: string) => async (_request: FastifyRequest, reply: FastifyReply) => {
    const assets = loadAssets();
    if ('missing' in assets) {
      return reply
        .code(404)
        .type('application/json; charset=utf-8')
        .send({
          error_code: 404,
          message:
            `The status page's files are not installed: expected ${Object.keys(ASSETS).join(', ')} in ` +
            `${assets.missing.join(' or ')} (copy runtime/status-page/ beside the compiled runtime)`,
        });
    }
    return reply.headers(SECURITY_HEADERS).type(ASSETS[name]!).send(assets.files.get(name));
  };

  const page = send('index.html');
  app.get('/ui', async (request, reply) => {
    // ignoreTrailingSlash routes `/ui` and `/ui/` here; relative URLs need the slash.
    const path = request.url.split('?', 1)[0]!;
    if (!path.endsWith('/')) return reply.redirect('ui/', 302);
    return page(request, reply);
  });
  for (const name of Object.keys(ASSETS)) {
    if (name !== 'index.html') app.get(`/ui/${name}`, send(name));
  }
}
