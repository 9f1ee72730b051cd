/** An instant (ms since the epoch) as reasons, logs and reports write it: `2026-12-02T21:50:00.000Z`. */
export function isoTime(ms: number): string {
  return new Date(ms).toISOString()
}
