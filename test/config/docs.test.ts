import { readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { type Command, environmentVariables, variables } from '../../src/config'
import { defaultText } from '../../src/config/help'

// The docs' variable tables are the config table (src/config/variables.ts) printed: each sits under
// a `<!-- variables: COMMAND -->` marker and must read exactly as generated here. After changing a
// row, regenerate them with `UPDATE_DOCS=1 npx jest test/config/docs.test.ts`.

const root = join(__dirname, '..', '..')
const files = [
  'README.md',
  ...readdirSync(join(root, 'docs'))
    .filter((name) => name.endsWith('.md'))
    .map((name) => join('docs', name)),
]
const header = '| variable | default | meaning |'

function table(command: Command): string {
  const rows = Object.values(variables).filter((row) => (row.commands as readonly Command[]).includes(command))
  return [header, '| --- | --- | --- |', ...rows.map((row) => `| \`${row.name}\` | ${defaultText(row)} | ${row.doc} |`)].join('\n')
}

interface Marked {
  file: string
  command: string
  /** The table as the file has it. */
  text: string
  start: number
  end: number
}

/** Every marker and the table right after it (blank lines between allowed). */
function markedTables(file: string, source: string): Marked[] {
  const found: Marked[] = []
  for (const match of source.matchAll(/<!-- variables: ([a-z-]+) -->\n+/g)) {
    const start = (match.index ?? 0) + match[0].length
    const lines = source.slice(start).split('\n')
    const count = lines.findIndex((line) => !line.startsWith('|'))
    const text = lines.slice(0, count < 0 ? lines.length : count).join('\n')
    found.push({ file, command: match[1] ?? '', text, start, end: start + text.length })
  }
  return found
}

const sources = new Map(files.map((file) => [file, readFileSync(join(root, file), 'utf8')]))
const marked = [...sources].flatMap(([file, source]) => markedTables(file, source))

if (process.env.UPDATE_DOCS) {
  for (const [file, source] of sources) {
    let updated = source
    for (const entry of markedTables(file, source).reverse()) {
      updated = updated.slice(0, entry.start) + table(entry.command as Command) + updated.slice(entry.end)
    }
    if (updated !== source) writeFileSync(join(root, file), updated)
  }
}

test('every command that reads the environment has its variable table in the docs', () => {
  expect([...new Set(marked.map((entry) => entry.command))].sort()).toEqual(Object.keys(environmentVariables).sort())
})

test.each(marked.map((entry) => [`${entry.file} (${entry.command})`, entry] as const))(
  '%s reads exactly as the config table',
  (_, entry) => {
    expect(Object.keys(environmentVariables)).toContain(entry.command)
    expect(entry.text).toBe(table(entry.command as Command))
  },
)

test.each(files)('%s has no variable table outside a marker', (file) => {
  const source = sources.get(file) ?? ''
  const tables = source.split('\n').filter((line) => line === header).length
  expect(tables).toBe(markedTables(file, source).length)
})
