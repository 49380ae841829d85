// Memory per open hibernated WebSocket: opens ROOMS x PER_ROOM sockets to a running duro
// (ChatRoom deployed), waits for the rooms to hibernate, and prints the server's RSS before and
// after. Run with node from a folder that has the npm package `ws` (scripts/bench copies it to
// target/peer-workerd/bench). Loopback only. Usage:
//   node bench-ws-memory.mjs BASE_WS_URL SERVER_PID [ROOMS=100] [PER_ROOM=100] [SETTLE_MS=15000]
import { readFileSync } from "node:fs";
import WebSocket from "ws";

const [base, pid, rooms = "100", perRoom = "100", settle = "15000"] = process.argv.slice(2);
if (!/^ws:\/\/(127\.|localhost)/.test(base)) throw new Error("loopback only");
const rss = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))[1]) / 1024;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const before = rss();
const sockets = [];
for (let r = 0; r < Number(rooms); r++) {
  const batch = [];
  for (let i = 0; i < Number(perRoom); i++) {
    batch.push(new Promise((resolve, reject) => {
      const ws = new WebSocket(`${base}/objects/ChatRoom/mem-${r}/ws`, { perMessageDeflate: false });
      ws.on("open", () => resolve(ws));
      ws.on("error", reject);
    }));
  }
  sockets.push(...(await Promise.all(batch)));
}
const open = rss();
await sleep(Number(settle)); // rooms hibernate (instances dropped) meanwhile
const hibernated = rss();
const n = sockets.length;
console.log(JSON.stringify({
  sockets: n, rooms: Number(rooms),
  rss_mib: { before: +before.toFixed(1), all_open: +open.toFixed(1), hibernated: +hibernated.toFixed(1) },
  kib_per_socket_hibernated: +(((hibernated - before) * 1024) / n).toFixed(1),
}));
for (const ws of sockets) ws.terminate();
process.exit(0);
