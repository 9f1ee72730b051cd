/**
 * Checks a token source's duration options once, at creation, naming the option as jose does
 * (`"timeoutMs" option must be a positive number`). Absent options take their defaults.
 */
export function checkDurations<T extends object>(
  options: T,
  positive: readonly (keyof T & string)[],
  nonNegative: readonly (keyof T & string)[] = [],
): void {
  for (const name of positive) {
    const value = options[name]
    if (value !== undefined && !(typeof value === 'number' && Number.isFinite(value) && value > 0)) {
      throw new TypeError(`"${name}" option must be a positive number`)
    }
  }
  for (const name of nonNegative) {
    const value = options[name]
    if (value !== undefined && !(typeof value === 'number' && Number.isFinite(value) && value >= 0)) {
      throw new TypeError(`"${name}" option must be a non-negative number`)
    }
  }
}
