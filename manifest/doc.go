// Package manifest parses connector manifests and action files strictly,
// names connectors, and computes what each step of an action may do.
//
// It imports no other Aileron package except sdk/abi, so the supervisor,
// the broker, the store and the CLI can all share its checks.
//
// # Connector names
//
// [ParseFQN] accepts one canonical spelling per connector
// (github://org/repo, gitlab://group/.../repo, hub://namespace/name,
// file:///abs/path); [FQN.Authority] is the key trust pins are stored
// under. [ParseRef] parses "FQN@VERSION".
//
// # Manifests and actions
//
// [ParseManifest] and [ParseAction] reject unknown fields, wrong types and
// invalid values, and report every problem at once as an [ErrorList] of
// [*Error]s that carry file:line:col:
//
//	m, err := manifest.LoadManifest("manifest.toml")
//	var e *manifest.Error
//	if errors.As(err, &e) && errors.Is(e, manifest.ErrUnknownField) { ... }
//
// [Manifest.Encode] and [Action.Encode] print canonical TOML.
//
// # Grants
//
// [CheckAction] checks an action against its installed connectors;
// [StepGrant] computes the [Grant] of one step, the single value the
// supervisor and the broker enforce. [CheckImports] checks a module's real
// imports ([ModuleImports]) against its manifest.
//
// # Templates
//
// Step inputs may contain ${{ inputs.NAME }} and ${{ steps.ID.output... }}
// references; [Render] substitutes them and [CoerceInputs] types the
// action's inputs. Nothing is evaluated: a reference only names a value.
//
// # Review
//
// [Describe] summarizes a manifest for a consent prompt and [Diff] shows
// what an update changes.
package manifest
