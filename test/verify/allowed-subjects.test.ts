import { ConfigError } from '../../src/errors'
import { createAllowedSubjects } from '../../src/verify/allowed-subjects'
import { toIdentity } from '../../src/verify/identity'

const identity = (claims: Record<string, unknown>) => toIdentity({ iss: 'https://issuer', aud: 'a', exp: 2, iat: 1, ...claims })

describe('createAllowedSubjects', () => {
  const allowed = createAllowedSubjects(
    ['system:serviceaccount:payments:checkout', 'system:serviceaccount:apps:*', 'caller@project.iam.gserviceaccount.com'],
    ['https://issuer'],
  )

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
    expect(createAllowedSubjects([], ['https://issuer'])(identity({ sub: 'anyone' }))).toBe(true)
  })

  test.each(['*', 'system:serviceaccount:*:default', 'system:serviceaccount:*', 'user-*'])('"%s" is refused at start', (entry) => {
    expect(() => createAllowedSubjects([entry], ['https://issuer'])).toThrow(ConfigError)
    expect(() => createAllowedSubjects([entry], ['https://issuer'])).toThrow(/ALLOWED_SUBJECTS/)
  })
})

describe('entries bound to an issuer: <issuer>#<subject>', () => {
  const clusterA = 'https://cluster-a.example/id'
  const clusterB = 'https://cluster-b.example/id'
  const google = 'https://accounts.google.com'
  const allowed = createAllowedSubjects(
    [
      `${clusterA}#system:serviceaccount:shop:api`,
      `${clusterB}#system:serviceaccount:ops:*`,
      `${clusterB}#spiffe://b/ns/x#y`,
      `${google}#caller@project.iam.gserviceaccount.com`,
    ],
    [clusterA, clusterB, google],
  )
  const from = (iss: string, claims: Record<string, unknown>) => identity({ iss, ...claims })

  test.each([
    ['the subject from the issuer it names', from(clusterA, { sub: 'system:serviceaccount:shop:api' }), true],
    ['the same subject from another trusted issuer', from(clusterB, { sub: 'system:serviceaccount:shop:api' }), false],
    ['a namespace wildcard from its issuer', from(clusterB, { sub: 'system:serviceaccount:ops:deploy' }), true],
    ['a namespace wildcard from another issuer', from(clusterA, { sub: 'system:serviceaccount:ops:deploy' }), false],
    ['a subject holding "#", "/" and ":" (split at the first "#")', from(clusterB, { sub: 'spiffe://b/ns/x#y' }), true],
    [
      'an email from Google as https://accounts.google.com',
      from(google, { sub: '1', email: 'caller@project.iam.gserviceaccount.com', email_verified: true }),
      true,
    ],
    [
      'an email from Google as accounts.google.com',
      from('accounts.google.com', { sub: '1', email: 'caller@project.iam.gserviceaccount.com', email_verified: true }),
      true,
    ],
    [
      'that email from a cluster',
      from(clusterA, { sub: '1', email: 'caller@project.iam.gserviceaccount.com', email_verified: true }),
      false,
    ],
  ])('%s -> %s', (_name, who, expected) => {
    expect(allowed(who)).toBe(expected)
  })

  test('with one issuer, entries without one keep meaning that issuer; naming it works too', () => {
    const one = createAllowedSubjects(['system:serviceaccount:shop:api', `${clusterA}#system:serviceaccount:ops:x`], [clusterA])
    expect(one(from(clusterA, { sub: 'system:serviceaccount:shop:api' }))).toBe(true)
    expect(one(from(clusterA, { sub: 'system:serviceaccount:ops:x' }))).toBe(true)
  })

  test.each([
    [
      ['system:serviceaccount:shop:api'],
      [clusterA, clusterB],
      /ALLOWED_SUBJECTS entry "system:serviceaccount:shop:api": names no issuer, and ID_ISSUER trusts 2.*"https:\/\/cluster-a.example\/id#system:serviceaccount:shop:api"/,
    ],
    [['https://elsewhere#x'], [clusterA], /issuer "https:\/\/elsewhere" is not one of ID_ISSUER \(https:\/\/cluster-a.example\/id\)/],
    [[`${clusterA}#`], [clusterA], /names no subject after "#"/],
    [[`${clusterA}#system:serviceaccount:*:x`], [clusterA], /"\*" is only allowed/],
  ])('%j with ID_ISSUER %j is refused', (entries, issuers, message) => {
    expect(() => createAllowedSubjects(entries, issuers)).toThrow(
      expect.objectContaining({ code: 'ERR_CONFIG', message: expect.stringMatching(message) }),
    )
  })
})
