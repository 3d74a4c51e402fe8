// What instances themselves say about the prompts they ran: the queue's tests check the hub's
// limits and order against these, not against the hub's own counters.
import WebSocket from 'ws';
import { HOST } from './server.mjs';

/** Every message an instance sends to clientId, stamped with the time it arrived. */
export function listenDirect(port, clientId) {
  const ws = new WebSocket(`ws://${HOST}:${port}/ws?clientId=${clientId}`);
  const events = [];
  ws.on('message', (d, bin) => { if (!bin) events.push({ at: Date.now(), ...JSON.parse(d.toString()) }); });
  return new Promise((r) => ws.once('open', () => r({ ws, events })));
}

/** Intervals [start, end] of each prompt from an instance's events, with how often it started. */
export function runs(events) {
  const out = new Map();
  for (const e of events) {
    const id = e.data?.prompt_id;
    if (!id) continue;
    if (e.type === 'execution_start') out.set(id, { ...(out.get(id) || {}), start: e.at, starts: (out.get(id)?.starts || 0) + 1 });
    if (['execution_success', 'execution_error', 'execution_interrupted'].includes(e.type))
      out.set(id, { ...(out.get(id) || {}), end: e.at });
  }
  return out;
}

/** The most intervals open at one moment. */
export function maxOverlap(intervals) {
  const points = [];
  for (const { start, end } of intervals) { points.push([start, 1]); points.push([end, -1]); }
  points.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let cur = 0, max = 0;
  for (const [, d] of points) { cur += d; max = Math.max(max, cur); }
  return max;
}
