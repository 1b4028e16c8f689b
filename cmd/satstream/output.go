package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli"
)

// jsonFlag switches every command from tables for people to the daemon's
// JSON for scripts.
var jsonFlag = cli.BoolFlag{
	Name:  "json",
	Usage: "print the daemon's JSON instead of a table",
}

// show prints an API answer: indented JSON with --json, otherwise a table
// of the list under listKey with the given columns, or key/value lines for
// a single object.
func show(c *cli.Context, w io.Writer, raw json.RawMessage, listKey string,
	columns ...string) error {

	if c.GlobalBool("json") || c.Bool("json") {
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			return err
		}
		out, _ := json.MarshalIndent(v, "", "  ")
		fmt.Fprintln(w, string(out))
		return nil
	}

	var obj map[string]any
	if err := json.Unmarshal(raw, &obj); err != nil {
		return err
	}
	if listKey == "" {
		printObject(w, obj)
		return nil
	}

	items, _ := obj[listKey].([]any)
	if len(items) == 0 {
		fmt.Fprintf(w, "no %s\n", strings.ReplaceAll(listKey, "_", " "))
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.ToUpper(strings.Join(columns, "\t")))
	for _, it := range items {
		row, _ := it.(map[string]any)
		cells := make([]string, len(columns))
		for i, col := range columns {
			cells[i] = cell(row[col])
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	if next, ok := obj["next_after"].(string); ok && next != "" {
		fmt.Fprintf(tw, "(more: --after %s)\n", next)
	}
	return tw.Flush()
}

// printObject prints one object's fields, nested objects indented.
func printObject(w io.Writer, obj map[string]any) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if sub, ok := m[k].(map[string]any); ok {
				walk(prefix+k+".", sub)
				continue
			}
			fmt.Fprintf(tw, "%s%s\t%s\n", prefix, k, cell(m[k]))
		}
	}
	walk("", obj)
	_ = tw.Flush()
}

func cell(v any) string {
	switch x := v.(type) {
	case nil:
		return "-"
	case float64:
		if x == float64(int64(x)) {
			return fmt.Sprintf("%d", int64(x))
		}
		return fmt.Sprintf("%g", x)
	case string:
		return x
	case []any, map[string]any:
		b, _ := json.Marshal(x)
		return string(b)
	default:
		return fmt.Sprint(x)
	}
}

// printValue prints a value built locally the way show prints an answer.
func printValue(c *cli.Context, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return show(c, c.App.Writer, raw, "")
}
