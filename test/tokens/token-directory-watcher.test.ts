import { EventEmitter } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createAtomicWriter } from '../../src/demo/kubelet'
import { createTokenDirectoryWatcher, type TokenDirectoryWatcher } from '../../src/tokens/token-directory-watcher'
import { captureLogs } from '../helpers/logs'

let base: string
let watcher: TokenDirectoryWatcher | undefined
const notices = new EventEmitter()

beforeEach(async () => {
  base = await mkdtemp(join(tmpdir(), 'bearer-watcher-'))
})

afterEach(async () => {
  await watcher?.close()
  watcher = undefined
  notices.removeAllListeners()
  await rm(base, { recursive: true, force: true })
})

function start() {
  const logs = captureLogs()
  watcher = createTokenDirectoryWatcher({ logger: logs.logger, reReadIntervalMs: 60_000, onChange: (key) => notices.emit('change', key) })
  return { watcher, logs }
}

/** Resolves once every key has had a change notice. */
function noticed(keys: string[]): Promise<void> {
  const waiting = new Set(keys)
  return new Promise((resolve) => {
    const onChange = (key: string) => {
      waiting.delete(key)
      if (waiting.size > 0) return
      notices.off('change', onChange)
      resolve()
    }
    notices.on('change', onChange)
  })
}

test('a kubelet swap is a change notice for every token file of the directory, under one watch', async () => {
  const dir = join(base, 'tokens')
  const writer = createAtomicWriter(dir)
  await writer.write({ token: 'a', 'run-token': 'b' })
  const { watcher, logs } = start()
  const keys = [join(dir, 'token'), join(dir, 'run-token')]
  const armed = noticed(keys)
  for (const key of keys) watcher.add(key)
  await armed

  const swapped = noticed(keys)
  await writer.write({ token: 'c', 'run-token': 'd' })
  await swapped
  expect(logs.lines.filter((line) => line.msg === 'watching token directory' && line.dir === dir)).toHaveLength(1)
})

test('a directory missing at first is watched for in its parent, then watched itself', async () => {
  const dir = join(base, 'later')
  const key = join(dir, 'token')
  const { watcher, logs } = start()
  const armed = noticed([key])
  watcher.add(key)
  await armed
  expect(logs.lines).toContainEqual(expect.objectContaining({ msg: 'watching token directory', dir, watching: base }))

  const writer = createAtomicWriter(dir)
  const created = noticed([key])
  await writer.write({ token: 'a' })
  await created
  await logs.waitFor((line) => line.msg === 'watching token directory' && line.watching === dir)

  const rotated = noticed([key])
  await writer.write({ token: 'b' })
  await rotated
})
