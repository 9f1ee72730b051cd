import { checkRequestPath } from '../../src/egress/request-path'
import { BadRequestError } from '../../src/errors'

test.each([
  ['plain', '/..'],
  ['plain, mid-path', '/a/../b'],
  ['single dot', '/a/./b'],
  ['at the end', '/a/..'],
  ['percent-encoded', '/%2e%2e/b'],
  ['upper-case encoding', '/%2E%2E/b'],
  ['mixed', '/.%2E/b'],
  ['double-encoded', '/%252e%252e/b'],
  ['after an encoded slash', '/a%2f..%2fb'],
  ['after an encoded backslash', '/a%5c..%5cb'],
  ['after a backslash', '/a\\..\\b'],
  ['with a path parameter (Tomcat, Spring)', '/a/..;jsessionid=1/b'],
  ['with an encoded path parameter', '/a/..%3b/b'],
  ['cut by an encoded question mark', '/a/..%3f/b'],
  ['cut by NUL', '/a/..%00/b'],
])('a dot segment %s is refused: %s', (_how, path) => {
  expect(() => checkRequestPath(path)).toThrow(BadRequestError)
})

test('a path encoded more than three times over is refused without decoding it further', () => {
  expect(() => checkRequestPath('/%25252e%25252e/x')).toThrow('"." or ".." segments')
  expect(() => checkRequestPath(`/%${'25'.repeat(2)}41`)).not.toThrow()
  expect(() => checkRequestPath(`/%${'25'.repeat(3)}41`)).toThrow('percent-encoded more than three times')
  expect(() => checkRequestPath(`/%${'25'.repeat(4000)}41`)).toThrow('percent-encoded more than three times')
})

test('a fragment is refused', () => {
  expect(() => checkRequestPath('/a#/../b')).toThrow('request path must not carry a fragment')
})

test.each(['/', '/a/b?c=d', '/a/..b/c', '/a/b../c', '/...', '/a%2fb', '/files/100%25', '/x?next=/../y', '/x?q=%2e%2e', '/%'])(
  '%s passes',
  (path) => {
    expect(() => checkRequestPath(path)).not.toThrow()
  },
)
