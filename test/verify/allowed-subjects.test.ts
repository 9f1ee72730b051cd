import { ConfigError } from '../../src/errors'
import { createAllowedSubjects } from '../../src/verify/allowed-subjects'
import { toIdentity } from '../../src/verify/identity'

const identity = (claims: Record<string, unknown>) => toIdentity({ iss: 'https://issuer', aud: 'a', exp: 2, iat: 1, ...claims })

describe('createAllowedSubjects', () => {
  const allowed = createAllowedSubjects([
    'system:serviceaccount:payments:checkout',
    'system:serviceaccount:apps:*',
    'caller@project.iam.gserviceaccount.com',
  ])

  test.each([
    ['an exact sub', { sub: 'system:serviceaccount:payments:checkout' }, true],
    ['another sub of that namespace', { sub: 'system:serviceaccount:payments:refunds' }, false],
    ['any service account of a wildcard namespace', { sub: 'system:serviceaccount:apps:frontend' }, true],
    ['a namespace that merely starts the same', { sub: 'system:serviceaccount:apps-dev:frontend' }, false],
    ['a sub with an extra segment under the wildcard', { sub: 'system:serviceaccount:apps:a:b' }, false],
    [
      'a verified Google service-account email',
      { sub: '1234', email: 'caller@project.iam.gserviceaccount.com', email_verified: true },
      true,
    ],
    ['the same email, unverified', { sub: '1234', email: 'caller@project.iam.gserviceaccount.com', email_verified: false }, false],
    ['the same email, email_verified absent', { sub: '1234', email: 'caller@project.iam.gserviceaccount.com' }, false],
    ['the same email as a sub', { sub: 'caller@project.iam.gserviceaccount.com' }, false],
  ])('%s -> %s', (_name, claims, expected) => {
    expect(allowed(identity(claims))).toBe(expected)
  })

  test('an empty list allows every verified subject', () => {
    expect(createAllowedSubjects([])(identity({ sub: 'anyone' }))).toBe(true)
  })

  test.each(['*', 'system:serviceaccount:*:default', 'system:serviceaccount:*', 'user-*'])('"%s" is refused at start', (entry) => {
    expect(() => createAllowedSubjects([entry])).toThrow(ConfigError)
    expect(() => createAllowedSubjects([entry])).toThrow(/ALLOWED_SUBJECTS/)
  })
})
