// `node:stream` under `nodejs_compat`: Node's streams as the readable-stream package ships them
// (unenv's are empty stand-ins). `node:stream/promises` is `promises` here.

// The package's browser entry: its main one requires `stream` (this module) first.
import Stream from "readable-stream/lib/ours/browser.js";

export const {
  Readable, Writable, Duplex, Transform, PassThrough, pipeline, finished, addAbortSignal, compose,
  destroy, isDisturbed, isErrored, isReadable,
} = Stream;
export const promises = Stream.promises;
export default Stream;
