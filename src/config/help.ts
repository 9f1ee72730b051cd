import { type Command, type Variable, variables } from './variables'

/** What a row's default column says: the default as written, `required`, or what applies instead. */
export function defaultText(row: Variable<unknown>): string {
  if (row.default !== undefined) return `\`${row.default}\``
  if (row.required) return 'required'
  return row.otherwise ?? 'none'
}

/** The note after a variable's name in `--help`: `default: 30`, `required`, or `optional`. */
function helpDefault(row: Variable<unknown>): string {
  if (row.required) return 'required'
  const fallback = row.default ?? row.otherwise
  return fallback === undefined ? 'optional' : `default: ${plain(fallback)}`
}

const width = 100

/** Markdown to terminal text: code spans and bold lose their marks. */
const plain = (markdown: string) => markdown.replace(/\*\*|`/g, '')

export function wrap(text: string, indent: string): string {
  const lines: string[] = []
  let line = ''
  for (const word of text.split(/\s+/)) {
    if (line && indent.length + line.length + 1 + word.length > width) {
      lines.push(indent + line)
      line = word
    } else line = line ? `${line} ${word}` : word
  }
  if (line) lines.push(indent + line)
  return lines.join('\n')
}

/** The `Environment:` section of `command --help`: each variable, its default, and its doc, from the table. */
export function environmentHelp(command: Command): string {
  const rows = Object.values(variables).filter((row) => (row.commands as readonly Command[]).includes(command))
  const entries = rows.map((row) => `  ${row.name} (${helpDefault(row)})\n${wrap(plain(row.doc), '      ')}`)
  return `Environment:\n${entries.join('\n')}`
}
