package edge

// subSet is a session's subscriptions by room. Most sessions have a few,
// so it is a slice, searched linearly, until it outgrows maxSubList; only
// then a map. A Go map costs about 250 bytes even with one entry, a
// noticeable share of an idle connection's memory.
type subSet struct {
	list []*subState
	m    map[string]*subState // instead of list once large
}

// maxSubList is the most subscriptions kept in a slice.
const maxSubList = 16

// get returns the subscription of room, or nil.
func (ss *subSet) get(room string) *subState {
	if ss.m != nil {
		return ss.m[room]
	}
	for _, st := range ss.list {
		if st.room == room {
			return st
		}
	}
	return nil
}

// put adds st, replacing the subscription of the same room if any.
func (ss *subSet) put(st *subState) {
	if ss.m != nil {
		ss.m[st.room] = st
		return
	}
	for i, old := range ss.list {
		if old.room == st.room {
			ss.list[i] = st
			return
		}
	}
	if len(ss.list) < maxSubList {
		ss.list = append(ss.list, st)
		return
	}
	ss.m = make(map[string]*subState, 2*maxSubList)
	for _, old := range ss.list {
		ss.m[old.room] = old
	}
	ss.m[st.room] = st
	ss.list = nil
}

// remove drops the subscription of room, if any.
func (ss *subSet) remove(room string) {
	if ss.m != nil {
		delete(ss.m, room)
		return
	}
	for i, st := range ss.list {
		if st.room == room {
			last := len(ss.list) - 1
			ss.list[i] = ss.list[last]
			ss.list[last] = nil
			ss.list = ss.list[:last]
			return
		}
	}
}

// each calls f for every subscription.
func (ss *subSet) each(f func(*subState)) {
	for _, st := range ss.m {
		f(st)
	}
	for _, st := range ss.list {
		f(st)
	}
}
