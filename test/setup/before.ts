import { setUpCluster } from './cluster.js'

await setUpCluster()
