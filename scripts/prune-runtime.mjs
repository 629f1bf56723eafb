#!/usr/bin/env node
/**
 * Prunes a built app tree down to what `node dist/cli.js` loads. The Dockerfile runs it in the build
 * stage, after `npm run build` and `npm prune --omit=dev`; the runtime stage copies package.json,
 * node_modules and dist from the result.
 *
 *   node scripts/prune-runtime.mjs <app dir>
 *
 * Removes: source maps and type declarations; in node_modules, TypeScript sources, docs, tests, examples
 * and benchmarks; and for a native addon (binding.gyp: better-sqlite3) everything its build left but the
 * addon itself — object files, static libraries, makefiles, the bundled SQLite sources. Licence files stay. Prints what it removed and what
 * the tree holds.
 */
import { existsSync, lstatSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';

const root = path.resolve(process.argv[2] ?? '.');
if (!existsSync(path.join(root, 'package.json')) || !existsSync(path.join(root, 'dist', 'cli.js'))) {
  process.stderr.write(`prune-runtime: ${root} holds no package.json and dist/cli.js; pass the built app's folder\n`);
  process.exit(2);
}

/** Files nothing at run time reads. */
const DROP_FILE = /(\.map|\.d\.[cm]?ts|\.tsbuildinfo|\.[cm]?ts|\.tsx|\.md|\.markdown|\.o|\.a|\.obj|\.lib|\.c|\.cc|\.cpp|\.h|\.hpp|\.gyp|\.gypi|\.mk|\.d)$|^(Makefile|\.npmignore|\.eslintrc.*|\.prettierrc.*|\.editorconfig|\.travis\.yml|tsconfig.*\.json)$/i;
const KEEP_FILE = /^(licen[cs]e|notice|copying)/i;
/** Folders of node_modules packages that nothing at run time reads. */
const DROP_DIR = new Set(['test', 'tests', '__tests__', 'example', 'examples', 'benchmark', 'benchmarks', 'docs', 'doc', '.github', 'coverage']);

let files = 0;
let bytes = 0;

function sizeOf(p) {
  const st = lstatSync(p);
  if (!st.isDirectory()) return { n: 1, b: st.size };
  let n = 0;
  let b = 0;
  for (const e of readdirSync(p)) {
    const s = sizeOf(path.join(p, e));
    n += s.n;
    b += s.b;
  }
  return { n, b };
}

function remove(p) {
  if (!existsSync(p)) return;
  const s = sizeOf(p);
  files += s.n;
  bytes += s.b;
  rmSync(p, { recursive: true, force: true });
}

/** Walks a folder (symlinks are not followed), dropping files by name and, in node_modules, folders by name. */
function walk(dir, inModules) {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) {
      if (inModules && DROP_DIR.has(e.name)) remove(p);
      else walk(p, inModules || e.name === 'node_modules');
    } else if (e.isFile() && DROP_FILE.test(e.name) && !KEEP_FILE.test(e.name)) {
      remove(p);
    }
  }
}

/** A native addon keeps its compiled `.node` files and nothing else of its build. */
function pruneAddon(pkg) {
  const build = path.join(pkg, 'build');
  if (existsSync(build)) {
    for (const e of readdirSync(build, { withFileTypes: true })) {
      const p = path.join(build, e.name);
      if (e.name !== 'Release' || !e.isDirectory()) remove(p);
    }
    const release = path.join(build, 'Release');
    if (existsSync(release)) for (const e of readdirSync(release)) if (!e.endsWith('.node') || e.startsWith('test_')) remove(path.join(release, e));
  }
  // The bundled library sources and the addon's own C++ (no JavaScript lives there).
  remove(path.join(pkg, 'deps'));
  const src = path.join(pkg, 'src');
  if (existsSync(src) && !hasScripts(src)) remove(src);
}

function hasScripts(dir) {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.isDirectory() ? hasScripts(path.join(dir, e.name)) : /\.(c|m)?js$|\.json$/.test(e.name)) return true;
  }
  return false;
}

function packages(modules) {
  const out = [];
  if (!existsSync(modules)) return out;
  for (const e of readdirSync(modules, { withFileTypes: true })) {
    if (!e.isDirectory() || e.name.startsWith('.')) continue;
    const p = path.join(modules, e.name);
    if (e.name.startsWith('@')) out.push(...packages(p).map((x) => x));
    else {
      out.push(p);
      out.push(...packages(path.join(p, 'node_modules')));
    }
  }
  return out;
}

function removeEmptyDirs(dir) {
  for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) removeEmptyDirs(path.join(dir, e.name));
  if (dir !== root && readdirSync(dir).length === 0) rmSync(dir, { recursive: true });
}

const before = sizeOf(root).b;
walk(path.join(root, 'dist'), false);
const modules = path.join(root, 'node_modules');
if (existsSync(modules)) {
  for (const pkg of packages(modules)) if (existsSync(path.join(pkg, 'binding.gyp'))) pruneAddon(pkg);
  walk(modules, true);
}
removeEmptyDirs(root);
const after = sizeOf(root).b;
const mb = (b) => `${(b / 1024 / 1024).toFixed(1)} MB`;
process.stdout.write(`prune-runtime: removed ${files} files (${mb(bytes)}); ${root} now holds ${mb(after)} (was ${mb(before)})\n`);
