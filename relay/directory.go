package relay

import (
	"fmt"
	"strings"
)

// Contact is a named person with one address per channel and a route.
type Contact struct {
	Name      string
	Route     []string          // channel names, in order
	Addresses map[string]string // channel name → address
}

// Directory holds the contacts and groups of one configuration. It is
// immutable once built; a reload builds a new one.
type Directory struct {
	Contacts map[string]*Contact
	Groups   map[string][]string
}

// GroupPrefix marks a group in a recipient list: "group:family".
const GroupPrefix = "group:"

// Resolve expands groups and returns the contacts named by to, each once,
// in first-mention order. Every unknown name is reported in one error that
// wraps ErrUnknownContact.
func (d *Directory) Resolve(to []string) ([]string, error) {
	var out, unknown []string
	seen := map[string]bool{}
	add := func(name string) {
		if _, ok := d.Contacts[name]; !ok {
			unknown = append(unknown, name)
			return
		}
		if !seen[name] {
			seen[name] = true
			out = append(out, name)
		}
	}
	for _, t := range to {
		t = strings.TrimSpace(t)
		if g, ok := strings.CutPrefix(t, GroupPrefix); ok {
			members, ok := d.Groups[g]
			if !ok {
				unknown = append(unknown, t)
				continue
			}
			for _, m := range members {
				add(m)
			}
			continue
		}
		add(t)
	}
	if len(unknown) > 0 {
		return nil, fmt.Errorf("%w: %s", ErrUnknownContact, strings.Join(unknown, ", "))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no recipients", ErrUnknownContact)
	}
	return out, nil
}

// Route returns the contact's route as hops. With a non-empty override the
// override's order is used, keeping only channels where the contact has an
// address; an override naming no such channel is an error wrapping
// ErrUnknownChannel.
func (d *Directory) Route(contact string, override []string) ([]Hop, error) {
	c, ok := d.Contacts[contact]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnknownContact, contact)
	}
	route := c.Route
	if len(override) > 0 {
		route = override
	}
	hops := make([]Hop, 0, len(route))
	for _, ch := range route {
		if addr, ok := c.Addresses[ch]; ok {
			hops = append(hops, Hop{Channel: ch, Address: addr})
		}
	}
	if len(hops) == 0 {
		return nil, fmt.Errorf("%w: contact %s has no address on %s", ErrUnknownChannel, contact, strings.Join(route, ", "))
	}
	return hops, nil
}
