import { Agent, buildConnector } from 'undici'
import { UndiciAgent, undiciConnector } from '../../src/proxy/forward'

// The forwarder loads undici's Agent and connector by their files, not undici's index (start-up
// memory): an undici upgrade that moves or replaces those files must fail here, not in a pod.
test("the forwarder's Agent is undici's exported Agent", () => {
  expect(UndiciAgent).toBe(Agent)
})

test("the forwarder's connector is undici's exported buildConnector", () => {
  expect(undiciConnector).toBe(buildConnector)
})
