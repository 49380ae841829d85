// `node:string_decoder` under `nodejs_compat` (unenv has none): Node's StringDecoder, which
// decodes bytes written in pieces without splitting a character — UTF-8 and UTF-16LE through a
// streaming TextDecoder or by whole code units, base64 by whole 3-byte groups, the others as
// `Buffer.toString` does.

import { Buffer } from "node:buffer";

const NAMES = {
  utf8: "utf8", "utf-8": "utf8", ucs2: "utf16le", "ucs-2": "utf16le", utf16le: "utf16le", "utf-16le": "utf16le",
  base64: "base64", base64url: "base64url", hex: "hex", latin1: "latin1", binary: "latin1", ascii: "ascii",
};

function normalize(encoding) {
  const name = NAMES[String(encoding ?? "utf8").toLowerCase()];
  if (name === undefined) throw new TypeError(`Unknown encoding: ${encoding}`);
  return name;
}

export class StringDecoder {
  constructor(encoding) {
    this.encoding = normalize(encoding);
    this.utf8 = this.encoding === "utf8" ? new TextDecoder("utf-8") : null;
    // Bytes of an incomplete group (UTF-16 code unit, base64 triple) kept for the next write.
    this.rest = Buffer.alloc(0);
  }

  write(chunk) {
    if (typeof chunk === "string") return chunk;
    const bytes = Buffer.from(chunk.buffer ?? chunk, chunk.byteOffset ?? 0, chunk.byteLength ?? chunk.length);
    if (this.utf8 !== null) return this.utf8.decode(bytes, { stream: true });
    const group = { utf16le: 2, base64: 3, base64url: 3 }[this.encoding];
    if (group === undefined) return bytes.toString(this.encoding);
    const all = this.rest.length > 0 ? Buffer.concat([this.rest, bytes]) : bytes;
    let whole = all.length - (all.length % group);
    // A UTF-16 high surrogate waits for its pair.
    if (this.encoding === "utf16le" && whole >= 2) {
      const last = all.readUInt16LE(whole - 2);
      if (last >= 0xd800 && last <= 0xdbff) whole -= 2;
    }
    this.rest = Buffer.from(all.subarray(whole));
    return all.subarray(0, whole).toString(this.encoding);
  }

  end(chunk) {
    let out = chunk === undefined ? "" : this.write(chunk);
    if (this.utf8 !== null) out += this.utf8.decode();
    else if (this.rest.length > 0) out += this.rest.toString(this.encoding);
    this.rest = Buffer.alloc(0);
    return out;
  }

  /** Node's legacy `text(buffer, offset)`. */
  text(chunk, offset = 0) {
    return this.write(chunk.subarray(offset));
  }
}

export default { StringDecoder };
