package mcpserver

import (
	"encoding/json"
	"fmt"

	"github.com/google/jsonschema-go/jsonschema"

	"aileron.dev/aileron/manifest"
)

// maxSafeInteger is the largest integer an integer input may hold:
// arguments reach us as JSON numbers decoded to float64, and
// [manifest.CoerceInputs] refuses integers it cannot hold exactly.
const maxSafeInteger = 1<<53 - 1

// ActionSchema derives the JSON Schema (draft 2020-12) of a's inputs: an
// object with one property per [manifest.Input], typed string, number,
// integer (bounded to ±(2^53-1)) or boolean, with its description and
// default, the required inputs listed, and no other property allowed
// ("additionalProperties": false). Properties keep the file's order.
//
// It fails if an input cannot become a valid schema: an unknown type, a
// repeated name, a required input with a default, or a default that does
// not fit its type. The returned schema resolves, so registering it with
// the MCP SDK (which validates every call's arguments against it) cannot
// fail.
func ActionSchema(a *manifest.Action) (*jsonschema.Schema, error) {
	s := &jsonschema.Schema{
		Type:       "object",
		Properties: map[string]*jsonschema.Schema{},
		// Security: an argument the action does not declare is refused
		// before anything runs, so an agent cannot smuggle values into
		// templates or probe for undeclared inputs.
		AdditionalProperties: &jsonschema.Schema{Not: &jsonschema.Schema{}},
	}
	for _, in := range a.Inputs {
		if _, dup := s.Properties[in.Name]; dup {
			return nil, fmt.Errorf("input %q is declared twice", in.Name)
		}
		p := &jsonschema.Schema{Description: in.Description}
		switch in.Type {
		case manifest.InputString, manifest.InputNumber, manifest.InputBoolean:
			p.Type = string(in.Type)
		case manifest.InputInteger:
			p.Type = string(in.Type)
			p.Minimum, p.Maximum = jsonschema.Ptr(float64(-maxSafeInteger)), jsonschema.Ptr(float64(maxSafeInteger))
		default:
			return nil, fmt.Errorf("input %q: type %q is not string, number, integer or boolean", in.Name, in.Type)
		}
		if in.Default != nil {
			if in.Required {
				return nil, fmt.Errorf("input %q is required and has a default", in.Name)
			}
			if n, ok := in.Default.(int64); ok && (n > maxSafeInteger || n < -maxSafeInteger) {
				return nil, fmt.Errorf("input %q: default %d is outside ±(2^53-1)", in.Name, n)
			}
			b, err := json.Marshal(in.Default)
			if err != nil {
				return nil, fmt.Errorf("input %q: default: %w", in.Name, err)
			}
			p.Default = b
		}
		if in.Required {
			s.Required = append(s.Required, in.Name)
		}
		s.Properties[in.Name] = p
		s.PropertyOrder = append(s.PropertyOrder, in.Name)
	}
	// The SDK resolves the schema when the tool is added and panics if
	// that fails; resolving here turns every such case into an error.
	// ValidateDefaults checks each default against its property.
	if _, err := s.Resolve(&jsonschema.ResolveOptions{ValidateDefaults: true}); err != nil {
		return nil, fmt.Errorf("input schema: %w", err)
	}
	return s, nil
}
