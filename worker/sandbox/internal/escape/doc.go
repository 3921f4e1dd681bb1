// Package escape holds the attacks the sandbox tests run from inside a locked
// down worker: each one tries something a sandboxed worker must not be able
// to do and reports the errno it got. Production code never imports it; the
// sandbox package exposes it only under the aileron_escapetest build tag.
package escape
