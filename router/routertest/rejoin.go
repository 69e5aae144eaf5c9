package routertest

// walDir returns node i's wal directory, the same one each time it starts.
func (c *Cluster) walDir(i int) string {
	if c.dirs == nil {
		c.dirs = make(map[int]string)
	}
	if d, ok := c.dirs[i]; ok {
		return d
	}
	d := c.t.TempDir()
	c.dirs[i] = d
	return d
}

// Rejoin starts node i again, after Leave or Kill, with its ID, region and
// wal directory (a restart of the process), joining a live node (alone
// if none is left), and
// waits until every live node sees it.
func (c *Cluster) Rejoin(i int) {
	c.t.Helper()
	if !c.Nodes[i].dead {
		c.t.Fatalf("rejoin node %d: it is running", i)
	}
	seed := "" // none left: it starts alone
	if live := c.Live(); len(live) > 0 {
		seed = c.Nodes[live[0]].Mesh.Addr()
	}
	c.Nodes[i] = c.startNode(i, seed)
	c.WaitConverged()
}
