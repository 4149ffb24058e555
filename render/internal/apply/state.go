package apply

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/nicpersist/nicpersist/render/internal/plan"
	"github.com/nicpersist/nicpersist/render/internal/unitfiles"
)

// StateVersion is the version of the state file this nicpersist writes,
// and the newest it reads. Version 2 records each iptables chain and the
// nftables table; version 1's NAT4 and NAT6 are read as its one chain.
// An older nicpersist refuses version 2 rather than stop only half of it.
const StateVersion = 2

// stateFile is the one file of the state directory (the unit's
// RuntimeDirectory, /run/nicpersist): what start applied and what it
// displaced, for a reload to tidy and for stop to undo.
const stateFile = "state.json"

// State is what the unit has done to the running kernel.
type State struct {
	Version int `json:"version"`
	// SysctlsSaved says Sysctls holds the values from before the first
	// start, which stop puts back; a reload keeps them.
	SysctlsSaved bool               `json:"sysctls_saved,omitempty"`
	Sysctls      []unitfiles.Sysctl `json:"sysctls,omitempty"`
	// DefaultSaved says Default holds the IPv4 main default (as `ip route
	// replace` takes it; empty: there was none) that our metric-0 default
	// replaced.
	DefaultSaved bool   `json:"default4_saved,omitempty"`
	Default      string `json:"default4,omitempty"`
	// NAT4 and NAT6 are version 1's: NICPERSIST-POSTROUTING and its jump
	// may be in place. loadState turns them into XT4 and XT6.
	NAT4 bool `json:"nat4,omitempty"`
	NAT6 bool `json:"nat6,omitempty"`
	// XT4 and XT6: the iptables chains ("table/chain", unitfiles.XChain)
	// that may be in place with their jumps.
	XT4 []string `json:"xtables4,omitempty"`
	XT6 []string `json:"xtables6,omitempty"`
	// NFT: nftables table inet nicpersist may be in place.
	NFT bool         `json:"nft,omitempty"`
	IP4 *FamilyState `json:"ip4,omitempty"`
	IP6 *FamilyState `json:"ip6,omitempty"`
}

// FamilyState is what start applied of one family, as batch lines. A
// step's lines are recorded before the step runs, so a failed start's stop
// removes them too.
type FamilyState struct {
	Routes []string `json:"routes,omitempty"` // in nicpersist's tables
	Rules  []string `json:"rules,omitempty"`
	Main   []string `json:"main,omitempty"`
	// Pre: route lines that found their route (same table, prefix and
	// metric) in the kernel before the first start, with that route; stop
	// puts it back rather than deleting it.
	Pre []PreRoute `json:"pre,omitempty"`
	// RulesPre: rule lines whose rule was in the kernel before a start
	// added it; stop leaves them.
	RulesPre []string `json:"rules_pre,omitempty"`
}

// PreRoute is a route that a line of ours replaced.
type PreRoute struct {
	Line  string `json:"line"`
	Route string `json:"route"` // as `ip route replace` takes it
}

func (s *FamilyState) empty() bool {
	return s == nil || len(s.Routes)+len(s.Rules)+len(s.Main)+len(s.Pre)+len(s.RulesPre) == 0
}

func (s *State) family(f plan.Family) *FamilyState {
	if f == plan.V6 {
		return s.IP6
	}
	return s.IP4
}

func (s *State) setFamily(f plan.Family, fs *FamilyState) {
	if fs.empty() {
		fs = nil
	}
	if f == plan.V6 {
		s.IP6 = fs
	} else {
		s.IP4 = fs
	}
}

// xt is the family's list of iptables chains that may be in place.
func (s *State) xt(f plan.Family) *[]string {
	if f == plan.V6 {
		return &s.XT6
	}
	return &s.XT4
}

// natPost is the one chain of version 1 states: NAT in POSTROUTING.
var natPost = unitfiles.XChains[0].Key()

// upgrade reads version 1's NAT marks as its one chain.
func (s *State) upgrade() {
	for _, f := range unitfiles.Families {
		if m := map[plan.Family]*bool{plan.V4: &s.NAT4, plan.V6: &s.NAT6}[f]; *m {
			*m = false
			if l := s.xt(f); !slices.Contains(*l, natPost) {
				*l = append(*l, natPost)
			}
		}
	}
}

// Empty says the unit has nothing applied.
func (s State) Empty() bool {
	return !s.SysctlsSaved && !s.DefaultSaved && !s.NAT4 && !s.NAT6 && len(s.XT4)+len(s.XT6) == 0 && !s.NFT && s.IP4.empty() && s.IP6.empty()
}

// clone copies a state deeply enough that the copy's families can be
// changed.
func (s State) clone() State {
	c := s
	c.Sysctls = slices.Clone(s.Sysctls)
	c.XT4, c.XT6 = slices.Clone(s.XT4), slices.Clone(s.XT6)
	for _, p := range []**FamilyState{&c.IP4, &c.IP6} {
		if *p != nil {
			fs := **p
			fs.Routes, fs.Rules, fs.Main = slices.Clone(fs.Routes), slices.Clone(fs.Rules), slices.Clone(fs.Main)
			fs.Pre, fs.RulesPre = slices.Clone(fs.Pre), slices.Clone(fs.RulesPre)
			*p = &fs
		}
	}
	return c
}

// legacyFiles are the text state files of nicpersist before the state was
// one typed file (apply.sh's, and the binary's that shared them), and the
// working files a start of theirs that did not finish left.
var legacyFiles = func() []string {
	out := []string{"default4.saved", "sysctl.saved", "nat4", "nat6"}
	for _, f := range []string{"ip4", "ip6"} {
		for _, n := range []string{"routes", "rules", "main", "pre", "rules.pre", "del",
			"tables.new", "routes.new", "rules.new", "main.new", "stale", "err", "exists", "old",
			"all.new", "rules.ours", "routes.stale", "main.stale", "rules.stale"} {
			out = append(out, f+"."+n)
		}
	}
	return out
}()

// loadState reads the state directory. A directory that the text state of
// an older nicpersist is in gets that state, converted; legacy says so, and
// saveState then removes the old files.
func loadState(dir string) (st State, legacy bool, err error) {
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &st); err != nil {
			return st, false, fmt.Errorf("%s: %v; stop the unit's work by hand or remove the file", filepath.Join(dir, stateFile), err)
		}
		if st.Version > StateVersion || st.Version < 1 {
			return st, false, fmt.Errorf("%s: state version %d; this nicpersist reads version %d and older: run the nicpersist that wrote it", filepath.Join(dir, stateFile), st.Version, StateVersion)
		}
		st.upgrade()
		return st, false, nil
	case !errors.Is(err, os.ErrNotExist):
		return st, false, err
	}
	return readLegacy(dir)
}

// readLegacy converts the text state files, one way: nothing writes them
// any more.
func readLegacy(dir string) (State, bool, error) {
	st := State{Version: StateVersion}
	read := func(name string) ([]string, bool, error) {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if errors.Is(err, os.ErrNotExist) {
			return nil, false, nil
		}
		if err != nil {
			return nil, false, err
		}
		var out []string
		for _, l := range strings.Split(string(b), "\n") {
			if strings.TrimSpace(l) != "" {
				out = append(out, l)
			}
		}
		return out, true, nil
	}
	found := false
	for _, name := range legacyFiles {
		if _, err := os.Lstat(filepath.Join(dir, name)); err == nil {
			found = true
		}
	}
	if !found {
		return st, false, nil
	}
	var errs []error
	if l, ok, err := read("sysctl.saved"); ok {
		st.SysctlsSaved = true
		for _, x := range l {
			// The old format split at the first blank of either kind.
			key, val := x, ""
			if i := strings.IndexAny(x, " \t"); i >= 0 {
				key, val = x[:i], x[i+1:]
			}
			st.Sysctls = append(st.Sysctls, unitfiles.Sysctl{Key: key, Value: val})
		}
	} else {
		errs = append(errs, err)
	}
	if l, ok, err := read("default4.saved"); ok {
		st.DefaultSaved = true
		if len(l) > 0 {
			st.Default = strings.TrimSpace(l[0])
		}
	} else {
		errs = append(errs, err)
	}
	for _, f := range unitfiles.Families {
		var fs FamilyState
		p := fmt.Sprintf("ip%d.", f)
		for _, x := range []struct {
			name string
			dst  *[]string
		}{{"routes", &fs.Routes}, {"rules", &fs.Rules}, {"main", &fs.Main}, {"rules.pre", &fs.RulesPre}} {
			l, _, err := read(p + x.name)
			errs = append(errs, err)
			*x.dst = l
		}
		pre, _, err := read(p + "pre")
		errs = append(errs, err)
		for _, x := range pre {
			if line, rt, ok := strings.Cut(x, "|"); ok {
				fs.Pre = append(fs.Pre, PreRoute{line, rt})
			}
		}
		st.setFamily(f, &fs)
		// Old state did not always mark NAT (apply.sh before the mark did
		// not): a chain may be there whenever anything was started, and
		// removing an absent one is harmless.
		*st.xt(f) = []string{natPost}
	}
	return st, true, errors.Join(errs...)
}

// saveState replaces the state file atomically (a temporary file in the
// same directory, fsync, rename): a crash leaves the old state or the new.
// An empty state is no file.
func saveState(dir string, st State, legacy bool) error {
	path := filepath.Join(dir, stateFile)
	if err := writeState(path, st); err != nil {
		return err
	}
	// The old files go once their state is safe in the new one.
	if legacy {
		for _, n := range legacyFiles {
			os.Remove(filepath.Join(dir, n))
		}
	}
	return nil
}

func writeState(path string, st State) error {
	if st.Empty() {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}
	st.Version = StateVersion
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".state-*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}
