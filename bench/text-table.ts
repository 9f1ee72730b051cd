/** Aligned plain text: the first line is the header, then a rule; the first column left-aligned, the rest right-aligned. */
export function formatTable(lines: string[][]): string {
  const widths = lines[0].map((_, i) => Math.max(...lines.map((line) => line[i].length)))
  const format = (line: string[]) => line.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join('  ')
  const rule = widths.map((w) => '-'.repeat(w)).join('  ')
  return [format(lines[0]), rule, ...lines.slice(1).map(format)].join('\n')
}
