import { lstat, mkdtemp, readdir, readFile, readlink, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createAtomicWriter } from '../../src/demo/kubelet'

const timestampDir = /^\.\.\d{4}_\d\d_\d\d_\d\d_\d\d_\d\d\.\d{1,10}$/

let base: string
let dir: string

beforeEach(async () => {
  base = await mkdtemp(join(tmpdir(), 'bearer-kubelet-'))
  dir = join(base, 'tokens')
})

afterEach(() => rm(base, { recursive: true, force: true }))

async function timestampDirs(): Promise<string[]> {
  return (await readdir(dir)).filter((name) => timestampDir.test(name))
}

test('the first write lays out the volume as the kubelet does', async () => {
  const day = () => new Date().toISOString().slice(0, 10).replaceAll('-', '_')
  const dayBefore = day()
  await createAtomicWriter(dir).write({ token: 'one' })
  const dayAfter = day()

  const [tsDir, ...others] = await timestampDirs()
  expect(others).toEqual([])
  expect((await readdir(dir)).sort()).toEqual(['..data', tsDir, 'token'].sort())
  expect(await readlink(join(dir, '..data'))).toBe(tsDir)
  expect(await readlink(join(dir, 'token'))).toBe('..data/token')
  expect(await readFile(join(dir, 'token'), 'utf8')).toBe('one')
  expect((await stat(join(dir, tsDir!))).mode & 0o777).toBe(0o755)
  expect((await stat(join(dir, tsDir!, 'token'))).mode & 0o777).toBe(0o644)
  // The timestamp is the write's UTC time.
  expect([dayBefore, dayAfter]).toContain(tsDir!.slice(2, 12))
})

test('a rotation swaps ..data to a new timestamped dir and removes the old one, keeping the visible link', async () => {
  const writer = createAtomicWriter(dir)
  await writer.write({ token: 'one' })
  const [first] = await timestampDirs()
  const link = await lstat(join(dir, 'token'))

  await writer.write({ token: 'two' })

  const [second, ...others] = await timestampDirs()
  expect(others).toEqual([])
  expect(second).not.toBe(first)
  expect(await readlink(join(dir, '..data'))).toBe(second)
  expect(await readFile(join(dir, 'token'), 'utf8')).toBe('two')
  expect((await lstat(join(dir, 'token'))).ino).toBe(link.ino)
  await expect(lstat(join(dir, '..data_tmp'))).rejects.toMatchObject({ code: 'ENOENT' })
})

test('writing the same content again writes nothing', async () => {
  const writer = createAtomicWriter(dir)
  await writer.write({ token: 'same' })
  const before = await timestampDirs()
  await writer.write({ token: 'same' })
  expect(await timestampDirs()).toEqual(before)
})

test('a file dropped from the payload loses its visible link; nested files get one top-level link', async () => {
  const writer = createAtomicWriter(dir)
  await writer.write({ token: 'a', 'ca.crt': 'b' })
  await writer.write({ token: 'a', 'nested/inner': 'c' })

  await expect(lstat(join(dir, 'ca.crt'))).rejects.toMatchObject({ code: 'ENOENT' })
  expect(await readlink(join(dir, 'nested'))).toBe('..data/nested')
  expect(await readFile(join(dir, 'nested', 'inner'), 'utf8')).toBe('c')
})

test('the mode option sets each file mode exactly, whatever the umask', async () => {
  await createAtomicWriter(dir).write({ token: 'x' }, { mode: 0o600 })
  expect((await stat(join(dir, 'token'))).mode & 0o777).toBe(0o600)
})

test.each([
  ['empty', ''],
  ['absolute', '/abs'],
  ['climbing', '../up'],
  ['with a .. element', 'a/../b'],
  ['starting with ..', '..hidden'],
  ['with a name over 255 characters', 'x'.repeat(256)],
])('a path %s is refused like the kubelet refuses it', async (_, name) => {
  await expect(createAtomicWriter(dir).write({ [name]: 'x' })).rejects.toThrow(/invalid path/)
})

test('remove() takes the whole directory away and a later write recreates it', async () => {
  const writer = createAtomicWriter(dir)
  await writer.write({ token: 'one' })
  await writer.remove()
  await expect(stat(dir)).rejects.toMatchObject({ code: 'ENOENT' })

  await writer.write({ token: 'two' })
  expect(await readFile(join(dir, 'token'), 'utf8')).toBe('two')
})

test('a reader never sees a missing or partial token while it rotates', async () => {
  const writer = createAtomicWriter(dir)
  const tokens = Array.from({ length: 40 }, (_, i) => `token-${i}-${'x'.repeat(2000)}`)
  await writer.write({ token: tokens[0]! })
  let rotating = true
  const seen = new Set<string>()
  const reader = (async () => {
    while (rotating) seen.add(await readFile(join(dir, 'token'), 'utf8'))
  })()

  for (const token of tokens.slice(1)) await writer.write({ token })
  rotating = false
  await reader

  for (const content of seen) expect(tokens).toContain(content)
  expect(await timestampDirs()).toHaveLength(1)
})

test('concurrent writes are serialized, the last one winning', async () => {
  const writer = createAtomicWriter(dir)
  await Promise.all(['a', 'b', 'c'].map((token) => writer.write({ token })))
  expect(await readFile(join(dir, 'token'), 'utf8')).toBe('c')
  expect(await timestampDirs()).toHaveLength(1)
})
