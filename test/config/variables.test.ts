import { variables } from '../../src/config'

// The table's own invariants: what the loaders, --help and the docs rely on.

const rows = Object.entries(variables)

test.each(rows.filter(([, row]) => row.default !== undefined))('%s: its default parses with its own parser', (_, row) => {
  expect(() => row.parse(row.default ?? '')).not.toThrow()
})

test.each(rows)('%s: a default, required, or neither; never both', (_, row) => {
  expect(row.default !== undefined && row.required === true).toBe(false)
  expect(row.otherwise !== undefined && (row.default !== undefined || row.required === true)).toBe(false)
})

test('a command reads each variable name through one row only', () => {
  const seen = new Set<string>()
  for (const [, row] of rows) {
    for (const command of row.commands) {
      const key = `${command} ${row.name}`
      expect({ key, duplicate: seen.has(key) }).toEqual({ key, duplicate: false })
      seen.add(key)
    }
  }
})
