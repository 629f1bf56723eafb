/** Ages and due times as people read them, for `status` and the console alike. */

/** "12 s ago", "3 min ago", "2 h ago", "4 d ago". */
export function ago(ms: number, now = Date.now()): string {
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 120) return `${s} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 172_800) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86_400)} d ago`;
}

/** `ago` of an ISO time; `empty` where there is none. */
export function agoIso(iso: string | null, now = Date.now(), empty = '-'): string {
  return iso ? ago(Date.parse(iso), now) : empty;
}

/** "in 4 s", "in 3 min", "in 2 h", or "due now". */
export function until(iso: string, now = Date.now()): string {
  const s = Math.round((Date.parse(iso) - now) / 1000);
  return s <= 0 ? 'due now' : s < 120 ? `in ${s} s` : s < 7200 ? `in ${Math.round(s / 60)} min` : `in ${Math.round(s / 3600)} h`;
}
