package common

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// fakePolar lays out a Polar data directory under root with network 1
// holding lnd nodes alice and bob and a c-lightning node carol, the way
// Polar writes it; withJSON adds networks.json (bob moved to port 10007
// because 10002 was taken).
func fakePolar(t *testing.T, root string, withJSON bool) {
	t.Helper()
	netDir := filepath.Join(root, "networks", "1")
	for _, name := range []string{"alice", "bob"} {
		lnd := filepath.Join(netDir, "volumes", "lnd", name)
		macDir := filepath.Join(lnd, "data", "chain", "bitcoin", "regtest")
		require.NoError(t, os.MkdirAll(macDir, 0o700))
		require.NoError(t, os.WriteFile(filepath.Join(lnd, "tls.cert"),
			[]byte("cert"), 0o600))
		require.NoError(t, os.WriteFile(filepath.Join(macDir,
			"admin.macaroon"), []byte("mac"), 0o600))
	}
	if !withJSON {
		return
	}
	lndNode := func(name string, grpc int) map[string]any {
		lnd := filepath.Join(netDir, "volumes", "lnd", name)
		return map[string]any{
			"id": 0, "networkId": 1, "name": name, "type": "lightning",
			"implementation": "LND", "version": "0.18.3-beta",
			"ports": map[string]int{"rest": 8081, "grpc": grpc,
				"p2p": 9735},
			"paths": map[string]string{
				"tlsCert": filepath.Join(lnd, "tls.cert"),
				"adminMacaroon": filepath.Join(lnd, "data", "chain",
					"bitcoin", "regtest", "admin.macaroon"),
			},
		}
	}
	file := map[string]any{
		"version": "3.0.0",
		"networks": []any{map[string]any{
			"id": 1, "name": "satstream", "path": netDir,
			"nodes": map[string]any{
				"bitcoin": []any{map[string]any{"name": "backend1"}},
				"lightning": []any{
					lndNode("alice", 10001),
					lndNode("bob", 10007),
					map[string]any{"name": "carol",
						"implementation": "c-lightning"},
				},
			},
		}},
		"charts": map[string]any{},
	}
	b, err := json.Marshal(file)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(root, "networks",
		"networks.json"), b, 0o600))
}

func TestPolarDir(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)

	dir, err := PolarDir()
	require.NoError(t, err)
	require.Equal(t, filepath.Join(home, ".polar"), dir)

	xdg := filepath.Join(home, ".local", "share", "polar")
	require.NoError(t, os.MkdirAll(xdg, 0o700))
	dir, err = PolarDir()
	require.NoError(t, err)
	require.Equal(t, xdg, dir)
}

func TestFindPolarNode(t *testing.T) {
	tests := []struct {
		name     string
		xdg      bool
		withJSON bool
		spec     string
		wantHost string
		wantErr  string
	}{
		{"json, xdg dir", true, true, "1/alice", "127.0.0.1:10001", ""},
		{"json, ~/.polar", false, true, "1/alice", "127.0.0.1:10001", ""},
		{"json has the moved port", true, true, "1/bob",
			"127.0.0.1:10007", ""},
		{"no json: files by layout, host unknown", false, false,
			"1/bob", "", ""},
		{"unknown node lists the others", true, true, "1/dave", "",
			"found: alice, bob, carol"},
		{"unknown node without json", false, false, "1/dave", "",
			"found: alice, bob"},
		{"not lnd", true, true, "1/carol", "", "is c-lightning"},
		{"unknown network", true, true, "2/alice", "",
			"no Polar network 2"},
		{"bad spec", true, true, "alice", "", "<network id>/<node name>"},
		{"bad id", true, true, "x/alice", "", "<network id>/<node name>"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			home := t.TempDir()
			t.Setenv("HOME", home)
			root := filepath.Join(home, ".polar")
			if tc.xdg {
				root = filepath.Join(home, ".local", "share",
					"polar")
			}
			fakePolar(t, root, tc.withJSON)

			node, err := FindPolarNode(tc.spec)
			if tc.wantErr != "" {
				require.ErrorIs(t, err, ErrPolar)
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.wantHost, node.Host)
			require.FileExists(t, node.TLSCertPath)
			require.FileExists(t, node.AdminMacaroonPath)
			require.Equal(t, filepath.Join(root, "networks", "1",
				"volumes", "lnd", node.Name, "tls.cert"),
				node.TLSCertPath)
		})
	}
}

// TestPolarInConfig: --lnd.polar fills the connection from Polar's files,
// lets --lnd.host and --lnd.macaroonpath override, and refuses
// --lnd.tlspath.
func TestPolarInConfig(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	root := filepath.Join(home, ".local", "share", "polar")
	fakePolar(t, root, true)

	c := DefaultLndConfig()
	c.Polar = "1/bob"
	require.NoError(t, c.Validate())
	require.Equal(t, "127.0.0.1:10007", c.Addr())
	require.Equal(t, "--lnd.polar", c.target.via)
	require.Contains(t, c.target.macPath, "admin.macaroon")

	baked := filepath.Join(home, "baked.macaroon")
	require.NoError(t, os.WriteFile(baked, []byte("m"), 0o600))
	c.Host = "127.0.0.1:20000"
	c.MacaroonPath = baked
	require.NoError(t, c.Validate())
	require.Equal(t, "127.0.0.1:20000", c.Addr())
	require.Equal(t, baked, c.target.macPath)

	c.TLSPath = baked
	err := c.Validate()
	require.ErrorIs(t, err, ErrLndConfig)
	require.ErrorContains(t, err, "--lnd.polar and --lnd.tlspath")

	// Without networks.json the port is unknown: ask for it.
	require.NoError(t, os.Remove(filepath.Join(root, "networks",
		"networks.json")))
	c = DefaultLndConfig()
	c.Polar = "1/alice"
	err = c.Validate()
	require.ErrorIs(t, err, ErrLndConfig)
	require.ErrorContains(t, err, "--lnd.host=127.0.0.1:")
	c.Host = "127.0.0.1:10001"
	require.NoError(t, c.Validate())
}
