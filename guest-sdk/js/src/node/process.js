// `node:process` under `nodejs_compat`: unenv's process, whose `env` is the deploy config's vars
// and secrets, as Cloudflare populates it (read when asked: at build time there are none).

import process from "unenv/node/process";
import * as vars from "duro:object/env@0.1.0";

/** Values `process.env.X = ...` set; they hide the config's. */
const written = new Map();
const removed = new Set();

function read(name) {
  if (written.has(name)) return written.get(name);
  if (removed.has(name)) return undefined;
  return vars.get(name) ?? undefined;
}

function names() {
  const all = new Set(Array.from(vars.all(), ([name]) => name));
  for (const name of removed) all.delete(name);
  for (const name of written.keys()) all.add(name);
  return [...all];
}

// unenv's `process.env` reads and writes `globalThis.__env__`.
globalThis.__env__ = new Proxy(Object.create(null), {
  get: (_target, name) => (typeof name === "string" ? read(name) : undefined),
  has: (_target, name) => typeof name === "string" && read(name) !== undefined,
  set(_target, name, value) {
    written.set(String(name), String(value));
    removed.delete(String(name));
    return true;
  },
  deleteProperty(_target, name) {
    written.delete(String(name));
    removed.add(String(name));
    return true;
  },
  ownKeys: () => names(),
  getOwnPropertyDescriptor(_target, name) {
    const value = typeof name === "string" ? read(name) : undefined;
    return value === undefined ? undefined : { value, writable: true, enumerable: true, configurable: true };
  },
});

export default process;
export * from "unenv/node/process";
