package dashboard

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed templates/*.html
var kitTemplates embed.FS

// pageData is what every page template sees: the layout's fields and the
// page's own Data.
type pageData struct {
	Title  string
	Name   string
	Nav    []NavLink
	Path   string
	Admin  bool
	CSRF   string
	Events string
	Error  string
	Data   any
}

// layout holds the kit's own pages (login) over the shared layout.
type layout struct {
	base  *template.Template
	pages map[string]*template.Template
}

func mustLayout() *layout {
	base := template.Must(template.New("").Funcs(Funcs()).ParseFS(
		kitTemplates, "templates/layout.html"))
	l := &layout{base: base, pages: map[string]*template.Template{}}
	for _, name := range []string{"login", "loggedin", "message"} {
		t := template.Must(template.Must(base.Clone()).ParseFS(
			kitTemplates, "templates/"+name+".html"))
		l.pages[name] = t
	}
	return l
}

// Pages are one dashboard's page templates, each parsed over the layout.
type Pages struct {
	kit   *Kit
	pages map[string]*template.Template
}

// Parse reads every *.html in dir of fsys as a page named after its file
// (without .html). A page defines "content"; it may use the layout's
// helpers (see Funcs) and extra funcs.
func (k *Kit) Parse(fsys fs.FS, dir string, extra template.FuncMap) (*Pages, error) {
	files, err := fs.Glob(fsys, path.Join(dir, "*.html"))
	if err != nil {
		return nil, err
	}
	p := &Pages{kit: k, pages: map[string]*template.Template{}}
	for _, f := range files {
		base, err := k.layout.base.Clone()
		if err != nil {
			return nil, err
		}
		t, err := base.Funcs(extra).ParseFS(fsys, f)
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", f, err)
		}
		p.pages[strings.TrimSuffix(path.Base(f), ".html")] = t
	}
	return p, nil
}

// Render writes page name with data for the request's session.
func (p *Pages) Render(w http.ResponseWriter, r *http.Request, status int,
	name, title string, data any) {

	t := p.pages[name]
	if t == nil {
		http.Error(w, "no page "+name, http.StatusInternalServerError)
		return
	}
	pd := p.kit.pageData(r, title, data)
	writePage(w, status, t, pd)
}

// Error renders a message page (a refused form, an unknown id).
func (p *Pages) Error(w http.ResponseWriter, r *http.Request, status int,
	msg string) {

	pd := p.kit.pageData(r, http.StatusText(status), nil)
	pd.Error = msg
	writePage(w, status, p.kit.layout.pages["message"], pd)
}

func (k *Kit) pageData(r *http.Request, title string, data any) pageData {
	pd := pageData{Title: title, Name: k.cfg.Name, Nav: k.cfg.Nav,
		Path: r.URL.Path, Data: data}
	if s := SessionFrom(r.Context()); s != nil {
		pd.Admin = s.Admin()
		pd.CSRF = s.CSRF
		if k.cfg.Events != nil {
			pd.Events = eventsPath
		}
	}
	return pd
}

// render writes one of the kit's own pages.
func (k *Kit) render(w http.ResponseWriter, status int, name string, pd pageData) {
	pd.Name = k.cfg.Name
	writePage(w, status, k.layout.pages[name], pd)
}

func writePage(w http.ResponseWriter, status int, t *template.Template,
	pd pageData) {

	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", pd); err != nil {
		http.Error(w, "rendering the page failed: "+err.Error(),
			http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// Funcs are the helpers every page template may use.
func Funcs() template.FuncMap {
	return template.FuncMap{
		"sats":      Sats,
		"satHour":   SatPerHour,
		"dur":       Duration,
		"rfc3339":   func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		"when":      When,
		"pct":       Percent,
		"qr":        QRDataURI,
		"upper":     strings.ToUpper,
		"title":     func(s string) string { return strings.ReplaceAll(s, "_", " ") },
		"nonzeroT":  func(t time.Time) bool { return !t.IsZero() },
		"isCurrent": func(cur, p string) bool { return cur == p },
	}
}
