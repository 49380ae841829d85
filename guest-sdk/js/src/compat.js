// The project's compatibility date and flags (wrangler's `compatibility_date` and
// `compatibility_flags`, given to the build, which defines `__DURO_COMPATIBILITY__`): the SDK's
// behaviours that Cloudflare ties to them follow them. A build without them (an example built by
// hand) has neither: every dated behaviour keeps its old form.

/* global __DURO_COMPATIBILITY__ */
const given = typeof __DURO_COMPATIBILITY__ === "object" ? __DURO_COMPATIBILITY__ : { date: "", flags: [] };

/**
 * Whether a behaviour is on: its flag is set, or the date is on or after the day Cloudflare
 * turned it on and its opposite flag is not set (workerd's `compatibility-date.capnp`).
 */
export function enabled(flag, since, disabledBy) {
  if (given.flags.includes(flag)) return true;
  if (disabledBy !== undefined && given.flags.includes(disabledBy)) return false;
  return given.date !== "" && given.date >= since;
}
