// Builds the console into ../assets, the folder the Go package embeds:
// app.js (the console and uPlot, bundled and minified), app.css, index.html
// and the third-party licences. Run with `npm ci && npm run build` in this
// folder; commit ../assets, so that building edk needs no Node.
import { build } from 'esbuild';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, '..', 'assets');
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });

// The bundle names the hash of what it was built from, so a Go test
// (TestBundleIsBuiltFromTheSources) sees a source changed without a rebuild.
// The same hash is computed there: each file's path and content, in order.
const inputs = [...readdirSync(join(here, 'src')).sort().map((f) => `src/${f}`), 'build.mjs', 'package-lock.json'];
const sum = createHash('sha256');
for (const f of inputs) {
  sum.update(f + '\0');
  sum.update(readFileSync(join(here, f)));
  sum.update('\0');
}
const sourcesHash = sum.digest('hex');

const uplot = JSON.parse(readFileSync(join(here, 'node_modules', 'uplot', 'package.json'), 'utf8'));

await build({
  entryPoints: { app: join(here, 'src', 'app.js') },
  bundle: true,
  minify: true,
  format: 'esm',
  target: ['es2020'],
  outdir: out,
  legalComments: 'none',
  banner: {
    js: `/* edk hub console. Includes uPlot ${uplot.version} (MIT, (c) Leon Sorokin): see /console/THIRD_PARTY_LICENSES.txt. Sources sha256 ${sourcesHash} */`,
    css: `/* edk hub console. Includes uPlot ${uplot.version} styles (MIT): see /console/THIRD_PARTY_LICENSES.txt */`,
  },
  logLevel: 'info',
});

copyFileSync(join(here, 'src', 'index.html'), join(out, 'index.html'));
writeFileSync(join(out, 'THIRD_PARTY_LICENSES.txt'),
  `The edk hub console bundles the following software.\n\n` +
  `uPlot ${uplot.version} (https://github.com/leeoniya/uPlot)\n\n` +
  readFileSync(join(here, 'node_modules', 'uplot', 'LICENSE'), 'utf8'));
