import { tearDownCluster } from './cluster.js'

await tearDownCluster()
