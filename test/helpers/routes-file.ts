import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** A routes file in a temp dir for the tests of one describe block; removed after them. */
export function withRoutesFile(document: unknown, name = 'routes.json'): { path: string } {
  const dir = mkdtempSync(join(tmpdir(), 'bearer-routes-'))
  const path = join(dir, name)
  writeFileSync(path, typeof document === 'string' ? document : JSON.stringify(document))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))
  return { path }
}
