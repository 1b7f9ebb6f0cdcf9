package dmarcreport

import (
	"bytes"
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"strings"
	"time"
)

// The page of `vouch reports html`: one self-contained file (inline CSS and
// SVG, no script, a CSP that forbids loading anything), so that it opens
// from a mail attachment or a file share as well as from disk. Every
// string from a report goes through html/template: a report is outside
// input, and anyone can send one.

//go:embed html.tmpl
var pageSource string

var page = template.Must(template.New("page").Funcs(template.FuncMap{
	"pct": func(f float64) string { return fmt.Sprintf("%.1f%%", f) },
	"join": func(s []string) string {
		return strings.Join(s, ", ")
	},
	"auth": AuthText,
}).Parse(pageSource))

// The chart's geometry, in SVG user units.
const (
	chartWidth  = 960
	chartHeight = 260
	plotLeft    = 60 // room for the message counts
	plotTop     = 20
	plotBottom  = 200 // the x axis; below it the day labels
	plotRight   = chartWidth - 10
	maxDayTicks = 12 // day labels along the x axis, at most
	maxBarWidth = 48 // a chart of a few days keeps slim bars
)

// pageData is what html.tmpl renders.
type pageData struct {
	ReceivedSummary
	Generated string
	Period    string
	Domains   []domainPage
}

type domainPage struct {
	DomainSummary
	Chart chart
}

// chart is one domain's bar chart of messages per day, laid out.
type chart struct {
	Width, Height      int
	Left, Right        int
	Top, Bottom        int
	Bars               []bar
	YTicks             []tick
	XLabelY, YLabelMid int
}

// bar is one day: a pass rect on the axis, the fail rect stacked on it.
type bar struct {
	Day          DayCount
	X, W         string
	PassY, PassH string
	FailY, FailH string
	Label        string // the day, under the bar ("" on most days when there are many)
	LabelX       string
	Title        string
}

type tick struct {
	Y     string
	Label string
}

// WriteHTML writes the page for s, generated at now.
func WriteHTML(w io.Writer, s ReceivedSummary, now time.Time) error {
	d := pageData{ReceivedSummary: s, Generated: now.UTC().Format("2006-01-02 15:04 UTC")}
	d.Period = "since " + s.Since.UTC().Format(DayFormat)
	if first, last := s.Covered(); first != "" {
		d.Period = fmt.Sprintf("%s (reports cover %s to %s)", d.Period, first, last)
	}
	for _, dom := range s.Domains {
		d.Domains = append(d.Domains, domainPage{DomainSummary: dom, Chart: layoutChart(dom.Days)})
	}
	var buf bytes.Buffer // all or nothing: a template error leaves no half page
	if err := page.Execute(&buf, d); err != nil {
		return err
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// layoutChart places one stacked bar per day and the y axis ticks.
func layoutChart(days []DayCount) chart {
	c := chart{Width: chartWidth, Height: chartHeight, Left: plotLeft, Right: plotRight, Top: plotTop, Bottom: plotBottom,
		XLabelY: plotBottom + 16, YLabelMid: (plotTop + plotBottom) / 2}
	var top int64
	for _, d := range days {
		top = max(top, d.Pass+d.Fail)
	}
	top = niceCeil(top)
	plotH := float64(plotBottom - plotTop)
	scale := func(n int64) float64 { return float64(n) * plotH / float64(top) }
	for i := int64(0); i <= 4; i++ {
		v := top * i / 4
		c.YTicks = append(c.YTicks, tick{Y: num(plotBottom - scale(v)), Label: fmt.Sprint(v)})
	}
	if len(days) == 0 {
		return c
	}
	slot := float64(plotRight-plotLeft) / float64(len(days))
	every := (len(days) + maxDayTicks - 1) / maxDayTicks
	for i, d := range days {
		x := plotLeft + float64(i)*slot
		passH, failH := scale(d.Pass), scale(d.Fail)
		w := min(slot*0.8, maxBarWidth)
		b := bar{Day: d, X: num(x + (slot-w)/2), W: num(w),
			PassY: num(plotBottom - passH), PassH: num(passH),
			FailY: num(plotBottom - passH - failH), FailH: num(failH),
			LabelX: num(x + slot/2),
			Title:  fmt.Sprintf("%s: %d messages, %d pass DMARC, %d fail", d.Day, d.Pass+d.Fail, d.Pass, d.Fail)}
		if i%every == 0 {
			b.Label = d.Day[5:] // MM-DD: the year is in the header
		}
		c.Bars = append(c.Bars, b)
	}
	return c
}

// niceCeil rounds n up to four times 1, 2 or 5 times a power of ten, so
// that the four y ticks are round numbers.
func niceCeil(n int64) int64 {
	quarter := max((n+3)/4, 1)
	for p := int64(1); ; p *= 10 {
		for _, m := range []int64{1, 2, 5} {
			if m*p >= quarter {
				return 4 * m * p
			}
		}
	}
}

func num(f float64) string { return fmt.Sprintf("%.1f", f) }
