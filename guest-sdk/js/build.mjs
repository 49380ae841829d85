#!/usr/bin/env node
// Builds a JavaScript or TypeScript module into a duro component.
//
//   node build.mjs [--world object|durable-object|worker] [--out FILE] [--wit DIR] [--rules JSON] ENTRY
//   node build.mjs --project DIR [--objects] [--rules JSON] [--node-compat]
//                  [--compatibility-date YYYY-MM-DD] [--compatibility-flag FLAG]... ENTRY
//
// `--world object` (the default) makes a Durable Object class component: every class the module
// exports that extends `DurableObject` is in it, and the runtime runs the one named like the class
// it is deployed as (one component can be deployed as several classes). `--world worker` makes a
// worker from the module's default export (a Hono app, or `{ fetch(request, env, ctx) }`).
// An object component targets the `shared-instance` world: one instance holds many objects of its
// class, as an isolate does in workerd (`--world durable-object`: one instance per object).
//
// Steps: esbuild bundles the entry (TypeScript included; `cloudflare:workers` resolves to this
// SDK) into one ES module, then componentize-js turns it into a component against duro's WIT.
// The component is rebuilt only when the bundle, the world or the toolchain changed.
//
// `--project DIR` builds a wrangler project's `main` as duro runs it: DIR/worker.wasm from the
// module's default export (when it has one), DIR/objects.wasm with its classes (with `--objects`),
// and DIR/manifest.json saying which were built. `--rules` takes wrangler's module rules
// (`[{"type": "Text", "globs": ["**/*.html"]}]`): imports of matching files give their text
// (Text) or an ArrayBuffer (Data); wrangler's defaults (Text: .txt .html .sql, Data: .bin) follow.
// `--compatibility-date` and `--compatibility-flag` (each flag once) are the project's: the SDK's
// behaviours that Cloudflare ties to them follow them (`src/compat.js`); `nodejs_compat` (or
// `--node-compat`) resolves `node:*` imports to polyfills and gives the `Buffer`, `process` and
// `global` globals.

import { componentize } from "@bytecodealliance/componentize-js";
import * as esbuild from "esbuild";
import { createHash } from "node:crypto";
import { builtinModules } from "node:module";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rename, rm, writeFile, mkdir, readdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const SDK = dirname(fileURLToPath(import.meta.url));
// `object` is the shared-instance world: one instance holds many objects of the class, as one
// isolate does in workerd (a JS instance is ~10 MiB). `durable-object` gives each object its own.
const WORLDS = { object: "shared-instance", "shared-instance": "shared-instance", "durable-object": "durable-object", worker: "background-worker" };

// The WIT imports a worker does not have; SDK code that would use them is stubbed in a worker.
const OBJECT_ONLY = {
  storage: ["get", "getMany", "put", "putMany", "delete", "deleteMany", "list", "deleteAll", "getAlarm", "setAlarm", "deleteAlarm", "transactionBegin", "transactionCommit", "transactionRollback"],
  state: ["id", "name", "className"],
  websockets: ["accept", "getWebsockets", "send", "close", "getTags", "serializeAttachment", "deserializeAttachment", "setAutoResponse", "hold"],
  sql: ["exec", "databaseSize", "savepoint", "release", "rollback"],
  inbox: ["take", "respond", "respondRpc", "done"],
};

function usage(message) {
  console.error(
    `error: ${message}\nusage: node build.mjs [--world object|durable-object|worker] [--out FILE] [--wit DIR] [--rules JSON] ENTRY\n` +
      `       node build.mjs --project DIR [--objects] [--rules JSON] [--node-compat]\n` +
      `                      [--compatibility-date YYYY-MM-DD] [--compatibility-flag FLAG]... ENTRY`,
  );
  process.exit(2);
}

function parse(argv) {
  // The WIT beside the SDK (a copy made by `duro init`), else this repository's.
  const wit = existsSync(join(SDK, "wit")) ? join(SDK, "wit") : resolve(SDK, "../../wit");
  const options = {
    world: "object", out: null, wit, entry: null, rules: [], project: null, objects: false, nodeCompat: false,
    compatibilityDate: "", compatibilityFlags: [],
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => argv[++i] ?? usage(`${arg} needs a value`);
    if (arg === "--world") options.world = value();
    else if (arg === "--out" || arg === "-o") options.out = value();
    else if (arg === "--wit") options.wit = resolve(value());
    else if (arg === "--rules") options.rules = JSON.parse(value());
    else if (arg === "--project") options.project = resolve(value());
    else if (arg === "--objects") options.objects = true;
    else if (arg === "--node-compat") options.nodeCompat = true;
    else if (arg === "--compatibility-date") options.compatibilityDate = value();
    else if (arg === "--compatibility-flag") options.compatibilityFlags.push(value());
    else if (arg.startsWith("-")) usage(`unknown option ${arg}`);
    else if (options.entry === null) options.entry = resolve(arg);
    else usage(`one entry module, got ${options.entry} and ${arg}`);
  }
  if (options.entry === null) usage("no entry module");
  if (options.compatibilityDate !== "" && !/^\d{4}-\d{2}-\d{2}$/.test(options.compatibilityDate)) {
    usage(`--compatibility-date is YYYY-MM-DD, not ${options.compatibilityDate}`);
  }
  if (options.compatibilityFlags.some((flag) => flag === "nodejs_compat" || flag === "nodejs_compat_v2")) {
    options.nodeCompat = true;
  }
  if (!(options.world in WORLDS)) usage(`--world is object, durable-object or worker, not ${options.world}`);
  options.out = resolve(options.out ?? options.entry.replace(/\.[cm]?[jt]sx?$/, "") + ".wasm");
  return options;
}

/** The module componentize-js sees: the entry's exports turned into the world's exports. */
function wrapper(world, entry, webCrypto = false) {
  const module = JSON.stringify(entry);
  // The Web Crypto algorithms the engine lacks, only in a bundle that uses `crypto.subtle` (they
  // weigh ~2 MiB of component).
  const extra = webCrypto ? `import ${JSON.stringify(join(SDK, "src/webcrypto.js"))};\n` : "";
  const prelude = `import ${JSON.stringify(join(SDK, "src/prelude.js"))};\n${extra}`;
  if (world === "worker") {
    return `${prelude}import * as module from ${module};
import { workerExports } from ${JSON.stringify(join(SDK, "src/worker.js"))};
const exports = workerExports(module);
export const fetch = exports.fetch;
export const wake = exports.wake;
`;
  }
  return `${prelude}import * as module from ${module};
import { objectExports } from ${JSON.stringify(join(SDK, "src/object.js"))};
const exports = objectExports(module);
export const fetch = exports.fetch;
export const alarm = exports.alarm;
export const websocketMessage = exports.websocketMessage;
export const websocketClose = exports.websocketClose;
export const websocketError = exports.websocketError;
export const rpc = exports.rpc;
export const wake = exports.wake;
${WORLDS[world] === "shared-instance" ? "export const evict = exports.evict;\n" : ""}`;
}

/** In a worker, the object-only imports are functions that say so. */
const workerStubs = {
  name: "duro-worker-stubs",
  setup(build) {
    build.onResolve({ filter: /^duro:object\/(storage|state|websockets|sql|inbox)@/ }, (args) => ({
      path: args.path.slice("duro:object/".length).split("@")[0],
      namespace: "duro-worker-stub",
    }));
    build.onLoad({ filter: /.*/, namespace: "duro-worker-stub" }, (args) => ({
      contents:
        `function absent() { throw new Error("${args.path} is not available in a worker; only objects have it"); }\n` +
        OBJECT_ONLY[args.path].map((name) => `const _${name} = absent; export { _${name} as ${name} };`).join("\n"),
      loader: "js",
    }));
  },
};

// wrangler's default module rules, after the project's own.
const DEFAULT_RULES = [
  { type: "Text", globs: ["**/*.txt", "**/*.html", "**/*.sql"] },
  { type: "Data", globs: ["**/*.bin"] },
  { type: "CompiledWasm", globs: ["**/*.wasm", "**/*.wasm?module"] },
];

/**
 * An esbuild plugin for wrangler's module rules: a matching import gives the file's text (Text)
 * or its bytes as an ArrayBuffer (Data). For each type only the first rule without
 * `fallthrough: true` counts, as in wrangler. Globs are `**\/*.ext` (or `*.ext`).
 */
function moduleRules(rules) {
  const byExtension = new Map();
  const closed = new Set();
  for (const rule of [...rules, ...DEFAULT_RULES]) {
    if (closed.has(rule.type)) continue;
    if (!rule.fallthrough) closed.add(rule.type);
    for (const glob of rule.globs ?? []) {
      const match = /^(?:\*\*\/)?\*(\.[^/*?]+)(?:\?module)?$/.exec(glob);
      if (!match) throw new Error(`module rule glob ${JSON.stringify(glob)}: duro takes globs of the form **/*.ext`);
      if (!byExtension.has(match[1])) byExtension.set(match[1], rule.type);
    }
  }
  const filter = new RegExp(`(${[...byExtension.keys()].map((e) => e.replace(/[.?]/g, "\\$&")).join("|")})$`);
  return {
    name: "duro-module-rules",
    setup(build) {
      build.onLoad({ filter }, async (args) => {
        const [, type] = [...byExtension].find(([extension]) => args.path.endsWith(extension));
        const bytes = await readFile(args.path);
        switch (type) {
          case "Text":
            return { contents: bytes.toString("utf8"), loader: "text" };
          case "Data":
            return {
              contents: `const text = atob(${JSON.stringify(bytes.toString("base64"))});\n` +
                "const bytes = new Uint8Array(text.length);\n" +
                "for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);\n" +
                "export default bytes.buffer;\n",
              loader: "js",
            };
          case "CompiledWasm":
            return { errors: [{ text: `${args.path}: CompiledWasm modules (WebAssembly.Module) are not supported on duro` }] };
          default:
            return { errors: [{ text: `${args.path}: module rule type ${type} is not supported on duro (Text, Data)` }] };
        }
      });
    },
  };
}

// Node's modules, by the name `node:X` and the bare `X` (`fs/promises` included).
const NODE_MODULES = new Set(builtinModules.filter((name) => !name.startsWith("_")));
// Where duro has its own module in place of unenv's polyfill.
const NODE_OWN = {
  assert: "src/node/assert.js",
  async_hooks: "src/node/async_hooks.js",
  crypto: "src/node/crypto.js",
  events: "src/node/events.js",
  process: "src/node/process.js",
  stream: "src/node/stream.js",
  "stream/promises": "src/node/stream_promises.js",
  string_decoder: "src/node/string_decoder.js",
};

/**
 * `node:*` imports. With `--node-compat` (wrangler's `nodejs_compat` flag) they resolve to unenv's
 * polyfills (or duro's own, `NODE_OWN`), as wrangler's build does; without it, an import of one
 * is an error that says which flag it needs. Bare names (`buffer`) count only with the flag, as
 * on Cloudflare (without it they are npm packages).
 */
function nodeModules(enabled) {
  return {
    name: "duro-node-modules",
    setup(build) {
      build.onResolve({ filter: /^[a-z_/]+$|^node:/ }, (args) => {
        const prefixed = args.path.startsWith("node:");
        const name = prefixed ? args.path.slice(5) : args.path;
        if (!NODE_MODULES.has(name) || (!prefixed && !enabled)) return undefined;
        if (!enabled) {
          return {
            errors: [{
              text: `${args.path} is a Node.js module: add "nodejs_compat" to compatibility_flags in the wrangler config (Cloudflare needs it too)`,
            }],
          };
        }
        if (NODE_OWN[name]) return { path: join(SDK, NODE_OWN[name]) };
        const polyfill = installed(`unenv/dist/runtime/node/${name}.mjs`, false);
        if (polyfill === null) {
          return { errors: [{ text: `${args.path}: duro's nodejs_compat has no polyfill of this module` }] };
        }
        return { path: polyfill };
      });
    },
  };
}

// An expression that needs async generator syntax to stay native, in a form esbuild leaves alone
// (a bundle whose async functions are lowered for AsyncLocalStorage lowers that syntax too).
const ASYNC_ITERATOR_PROTOTYPE = "Object.getPrototypeOf(Object.getPrototypeOf(async function* () {}).prototype)";
const NATIVE_ASYNC_ITERATOR_PROTOTYPE = `(new Function(${JSON.stringify(`return ${ASYNC_ITERATOR_PROTOTYPE};`)}))()`;

/** unenv's modules, with `ASYNC_ITERATOR_PROTOTYPE` computed natively. */
const unenvSources = {
  name: "duro-unenv-sources",
  setup(build) {
    build.onLoad({ filter: /[\\/]unenv[\\/].*\.mjs$/ }, async (args) => {
      const text = await readFile(args.path, "utf8");
      if (!text.includes(ASYNC_ITERATOR_PROTOTYPE)) return undefined;
      return { contents: text.replaceAll(ASYNC_ITERATOR_PROTOTYPE, NATIVE_ASYNC_ITERATOR_PROTOTYPE), loader: "js" };
    });
  },
};

/** What esbuild takes for `nodejs_compat`: the globals module injected, the plugin. */
function nodeOptions(enabled) {
  return {
    inject: enabled ? [join(SDK, "src/node/globals.js")] : [],
    plugins: enabled ? [nodeModules(enabled), unenvSources] : [nodeModules(enabled)],
  };
}

/** Cloudflare's modules, as the SDK has them. */
const ALIASES = {
  "cloudflare:workers": join(SDK, "src/index.js"),
  "cloudflare:email": join(SDK, "src/email.js"),
  "duro:workers": join(SDK, "src/index.js"),
};

/** The names the entry module exports (`default` for a worker). */
async function exportsOf(entry) {
  const node = nodeOptions(options.nodeCompat);
  const result = await esbuild.build({
    entryPoints: [entry],
    bundle: true,
    write: false,
    metafile: true,
    format: "esm",
    platform: "neutral",
    mainFields: ["module", "main"],
    conditions: ["workerd", "worker", "browser"],
    alias: ALIASES,
    external: ["duro:object/*", "cloudflare:*"],
    inject: node.inject,
    plugins: [...node.plugins, moduleRules(options.rules)],
    logLevel: "silent",
  });
  return Object.values(result.metafile.outputs)[0].exports;
}

async function bundle(world, entry) {
  const node = nodeOptions(options.nodeCompat);
  const settings = {
    stdin: { contents: wrapper(world, entry), resolveDir: dirname(entry), sourcefile: "duro-entry.js", loader: "js" },
    bundle: true,
    write: false,
    metafile: true,
    format: "esm",
    platform: "neutral",
    target: "es2022",
    // As wrangler builds: classes and functions keep their names (a class lowered from
    // decorators, or renamed to avoid a clash, is still found by its name).
    keepNames: true,
    mainFields: ["module", "main"],
    conditions: ["workerd", "worker", "browser"],
    alias: ALIASES,
    external: ["duro:object/*"],
    define: {
      __DURO_COMPATIBILITY__: JSON.stringify({ date: options.compatibilityDate, flags: options.compatibilityFlags }),
    },
    inject: node.inject,
    plugins: [
      ...(world === "worker" ? [workerStubs] : []),
      ...node.plugins,
      moduleRules(options.rules),
    ],
    logLevel: "warning",
  };
  let result = await esbuild.build(settings);
  // A second build when the first shows what it needs: the Web Crypto algorithms for a bundle
  // that uses `crypto.subtle`, and lowered `async` functions for AsyncLocalStorage (whose store
  // follows an `await` only through `then`: see src/node/async_hooks.js).
  const webCrypto = /\bsubtle\b/.test(result.outputFiles[0].text);
  const lowered = Object.keys(result.metafile.inputs).some((path) => path.endsWith(join("src", "node", "async_hooks.js")));
  if (webCrypto || lowered) {
    result = await esbuild.build({
      ...settings,
      stdin: { ...settings.stdin, contents: wrapper(world, entry, webCrypto) },
      supported: lowered ? { "async-await": false } : {},
    });
  }
  return result.outputFiles[0].text;
}

/** Where Node finds a package's file from the SDK: its node_modules, or a project's around it
 * (null when it is nowhere and `required` is false). */
function installed(file, required = true) {
  for (let dir = SDK; ; dir = dirname(dir)) {
    const path = join(dir, "node_modules", file);
    if (existsSync(path)) return path;
    if (dirname(dir) === dir) {
      if (!required) return null;
      throw new Error(`${file} is not installed (npm install)`);
    }
  }
}

async function witDigest(dir) {
  const hash = createHash("sha256");
  for (const name of (await readdir(dir)).sort()) {
    if (name.endsWith(".wit")) hash.update(name).update(await readFile(join(dir, name)));
  }
  return hash.digest("hex");
}

const options = parse(process.argv.slice(2));

/** Builds `entry` as a component of `world` into `out`, unless it is up to date. */
async function build(worldOption, entry, out) {
  const world = WORLDS[worldOption];
  const started = Date.now();
  const code = await bundle(worldOption, entry);
  const { version } = JSON.parse(await readFile(installed("@bytecodealliance/componentize-js/package.json"), "utf8"));
  const inputs = createHash("sha256")
    .update(`${world}\n${version}\n${await witDigest(options.wit)}\n`)
    .update(code)
    .digest("hex");
  const stamp = `${out}.inputs`;
  const previous = await readFile(stamp, "utf8").catch(() => null);
  const built = await readFile(out).then(() => true, () => false);
  if (built && previous === inputs) {
    console.log(`${out}: up to date`);
    return;
  }
  const work = await mkdtemp(join(tmpdir(), "duro-js-"));
  try {
    const source = join(work, "bundle.js");
    await writeFile(source, code);
    console.log(`componentizing ${entry} (${world} world, ${(code.length / 1024).toFixed(0)} KiB of JS)...`);
    const { component } = await componentize({ sourcePath: source, witPath: options.wit, worldName: world });
    await mkdir(dirname(out), { recursive: true });
    const partial = `${out}.partial`;
    await writeFile(partial, component);
    await rename(partial, out);
    await writeFile(stamp, inputs);
    const mb = (component.length / 1048576).toFixed(1);
    console.log(`${out}: ${mb} MiB in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** Builds what the options ask for. */
async function main() {
  if (options.project === null) {
    await build(options.world, options.entry, options.out);
    return;
  }
  const names = await exportsOf(options.entry);
  const manifest = { worker: names.includes("default"), objects: options.objects, exports: names };
  if (options.objects) await build("object", options.entry, join(options.project, "objects.wasm"));
  if (manifest.worker) await build("worker", options.entry, join(options.project, "worker.wasm"));
  await mkdir(options.project, { recursive: true });
  await writeFile(join(options.project, "manifest.json"), JSON.stringify(manifest, null, 2));
}

try {
  await main();
} catch (error) {
  // esbuild's errors: each with its file and line, no stack after them.
  if (!Array.isArray(error?.errors)) throw error;
  for (const { text, location } of error.errors) {
    const at = location ? `${location.file}:${location.line}:${location.column}: ` : "";
    console.error(`${at}error: ${text}`);
  }
  process.exit(1);
}
