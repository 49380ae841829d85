// `cloudflare:email`: Cloudflare's `EmailMessage` (`new EmailMessage(from, to, raw)`), so that a
// module which builds messages loads. duro has no email routing: a `send_email` binding is named
// in the start-up warning and absent from `env`.

export class EmailMessage {
  constructor(from, to, raw) {
    if (typeof from !== "string" || typeof to !== "string") {
      throw new TypeError("EmailMessage: from and to are addresses (strings)");
    }
    this.from = from;
    this.to = to;
    this.raw = raw;
  }
}
