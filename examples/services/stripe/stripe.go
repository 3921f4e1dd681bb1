// Package stripe is a fake of the Stripe API (https://api.stripe.com/v1)
// for tests and the demo: customers and PaymentIntents, with Stripe's
// conventions checked closely enough to catch connector mistakes:
//
//   - secret keys by Bearer or Basic auth (the key as the user name);
//     restricted keys carry permissions (customer_write, ...) and get 403
//     naming the missing one;
//   - request bodies must be application/x-www-form-urlencoded with
//     Stripe's bracket syntax (metadata[k]=v, payment_method_types[0]=card);
//     unknown, missing and invalid parameters get Stripe's error objects
//     ({"error": {"type", "code", "param", "message"}});
//   - Idempotency-Key: the first response to a key is saved once the
//     endpoint has started executing; the same key with the same
//     parameters replays it (Idempotent-Replayed: true), with different
//     parameters or another endpoint it is an idempotency_error;
//   - test payment methods pm_card_visa, pm_card_mastercard and
//     pm_card_chargeDeclined behave as in test mode.
//
// [Service.LoseResponses] drops responses after processing, the failure
// idempotency keys exist for. Every request is recorded ([Service.Seen]).
package stripe

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Account is the fake account's id.
const Account = "acct_1AileronTest00"

// APIVersion is the version the fake answers with when the request names
// none.
const APIVersion = "2024-06-20"

// Customer is a stored customer.
type Customer struct {
	ID          string
	Email       string
	Name        string
	Description string
	Metadata    map[string]string
	Created     int64
}

// PaymentIntent is a stored PaymentIntent.
type PaymentIntent struct {
	ID             string
	Amount         int64
	AmountReceived int64
	Currency       string
	Customer       string
	Description    string
	PaymentMethod  string
	Status         string
	Metadata       map[string]string
	Created        int64
	// IdempotencyKey is the key of the request that created it.
	IdempotencyKey string
}

// Request is one request as the service received it.
type Request struct {
	Method string
	Path   string
	Header http.Header
	// Form is the parsed body.
	Form url.Values
	At   time.Time
}

// Service is the fake Stripe account. Create it with New.
type Service struct {
	mu        sync.Mutex
	keys      map[string][]string // key -> permissions; nil: a secret key, all permitted
	customers []*Customer
	intents   []*PaymentIntent
	idem      map[string]*saved
	seen      []Request
	lose      map[string]int // path -> responses still to lose
}

// saved is the result stored for an idempotency key.
type saved struct {
	method, path, params string
	status               int
	body                 []byte
}

// New returns an empty account without keys.
func New() *Service {
	return &Service{keys: map[string][]string{}, idem: map[string]*saved{}, lose: map[string]int{}}
}

// AddSecretKey makes key (sk_test_...) valid with every permission.
func (s *Service) AddSecretKey(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys[key] = nil
}

// AddRestrictedKey makes key (rk_test_...) valid with only perms, e.g.
// "customer_write", "payment_intent_write" (a write permission includes
// read).
func (s *Service) AddRestrictedKey(key string, perms ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys[key] = append([]string{}, perms...)
}

// LoseResponses makes the next n POST requests to path (e.g.
// "/v1/payment_intents") run to completion (objects created, idempotent
// result saved) and then lose their response: the connection is reset
// before it is sent, as when a network fails at the worst moment. Replayed
// responses are lost the same way.
func (s *Service) LoseResponses(path string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lose[path] = n
}

// Seen returns the requests received so far.
func (s *Service) Seen() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.seen)
}

// Customers returns the customers created so far.
func (s *Service) Customers() []Customer {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Customer, len(s.customers))
	for i, c := range s.customers {
		out[i] = *c
	}
	return out
}

// PaymentIntents returns the PaymentIntents created so far.
func (s *Service) PaymentIntents() []PaymentIntent {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]PaymentIntent, len(s.intents))
	for i, p := range s.intents {
		out[i] = *p
	}
	return out
}

// apiError is Stripe's error object.
type apiError struct {
	status        int
	Type          string `json:"type"`
	Code          string `json:"code,omitempty"`
	DeclineCode   string `json:"decline_code,omitempty"`
	Param         string `json:"param,omitempty"`
	Message       string `json:"message"`
	DocURL        string `json:"doc_url,omitempty"`
	PaymentIntent any    `json:"payment_intent,omitempty"`
}

func invalid(code, param, format string, args ...any) *apiError {
	e := &apiError{status: http.StatusBadRequest, Type: "invalid_request_error", Code: code, Param: param, Message: fmt.Sprintf(format, args...)}
	if code != "" {
		e.DocURL = "https://stripe.com/docs/error-codes/" + strings.ReplaceAll(code, "_", "-")
	}
	return e
}

// ServeHTTP implements http.Handler.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	form, _ := url.ParseQuery(string(body))
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seen = append(s.seen, Request{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Form: form, At: time.Now()})

	w.Header().Set("Request-Id", "req_"+randID(14))
	w.Header().Set("Stripe-Version", APIVersion)
	if v := r.Header.Get("Stripe-Version"); v != "" {
		w.Header().Set("Stripe-Version", v)
	}
	perms, e := s.authenticate(r)
	if e != nil {
		writeError(w, e)
		return
	}
	route, id := routeOf(r.Method, r.URL.Path)
	if route == nil {
		writeError(w, &apiError{status: http.StatusNotFound, Type: "invalid_request_error",
			Message: fmt.Sprintf("Unrecognized request URL (%s: %s). Please see https://stripe.com/docs or we can help at https://support.stripe.com/.", r.Method, r.URL.Path)})
		return
	}
	if perms != nil && !slices.Contains(perms, route.perm) && !slices.Contains(perms, strings.Replace(route.perm, "_read", "_write", 1)) {
		writeError(w, &apiError{status: http.StatusForbidden, Type: "invalid_request_error",
			Message: fmt.Sprintf("The provided key '%s' does not have the required permissions for this endpoint on account '%s'. Having the 'rak_%s' permission would allow this request to continue.", mask(bearerKey(r)), Account, route.perm)})
		return
	}
	if r.Method == http.MethodGet {
		status, out := route.get(s, id)
		writeJSON(w, status, out)
		return
	}

	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/x-www-form-urlencoded" && len(body) > 0 {
		writeError(w, invalid("", "", "Invalid request: unsupported Content-Type %s. If error persists and you need assistance, please contact support@stripe.com.", r.Header.Get("Content-Type")))
		return
	}
	key := r.Header.Get("Idempotency-Key")
	if len(key) > 255 {
		writeError(w, invalid("", "", "Idempotency keys must be at most 255 characters long."))
		return
	}
	params := form.Encode() // sorted: the order of parameters does not matter
	if prev, ok := s.idem[key]; key != "" && ok {
		switch {
		case prev.path != r.URL.Path || prev.method != r.Method:
			w.Header().Set("Stripe-Should-Retry", "false")
			writeError(w, &apiError{status: http.StatusBadRequest, Type: "idempotency_error",
				Message: fmt.Sprintf("Keys for idempotent requests can only be used for the same endpoint they were first used for ('%s' vs '%s'). Try using a key other than '%s' if you meant to execute a different request.", prev.path, r.URL.Path, key)})
		case prev.params != params:
			w.Header().Set("Stripe-Should-Retry", "false")
			writeError(w, &apiError{status: http.StatusBadRequest, Type: "idempotency_error",
				Message: fmt.Sprintf("Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '%s' if you meant to execute a different request.", key)})
		default:
			if s.lose[r.URL.Path] > 0 {
				s.lose[r.URL.Path]-- // a replay's response can be lost too
				panic(http.ErrAbortHandler)
			}
			w.Header().Set("Idempotency-Key", key)
			w.Header().Set("Idempotent-Replayed", "true")
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(prev.status)
			_, _ = w.Write(prev.body)
		}
		return
	}
	p, e := parseParams(form, route.allowed)
	if e != nil {
		// Parameter errors happen before the endpoint runs: nothing is
		// saved for the key, so a corrected retry may reuse it.
		writeError(w, e)
		return
	}
	status, out := route.post(s, p, key)
	b, _ := json.Marshal(out)
	if key != "" {
		s.idem[key] = &saved{method: r.Method, path: r.URL.Path, params: params, status: status, body: b}
		w.Header().Set("Idempotency-Key", key)
	}
	if s.lose[r.URL.Path] > 0 {
		s.lose[r.URL.Path]--
		// The work is done and saved, but the client never hears of it.
		panic(http.ErrAbortHandler)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// authenticate returns the key's permissions (nil: all).
func (s *Service) authenticate(r *http.Request) ([]string, *apiError) {
	key := bearerKey(r)
	if key == "" {
		return nil, &apiError{status: http.StatusUnauthorized, Type: "invalid_request_error",
			Message: "You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for details, or we can help at https://support.stripe.com/."}
	}
	for k, perms := range s.keys {
		if subtle.ConstantTimeCompare([]byte(k), []byte(key)) == 1 {
			return perms, nil
		}
	}
	return nil, &apiError{status: http.StatusUnauthorized, Type: "invalid_request_error", Message: "Invalid API Key provided: " + mask(key)}
}

// bearerKey reads the key from Bearer auth, or Basic auth with the key as
// the user name and an empty password.
func bearerKey(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if k, ok := strings.CutPrefix(h, "Bearer "); ok {
		return strings.TrimSpace(k)
	}
	if user, _, ok := r.BasicAuth(); ok {
		return user
	}
	return ""
}

// mask shows a key as Stripe does in errors: its prefix and last four.
func mask(key string) string {
	if len(key) < 12 {
		return strings.Repeat("*", len(key))
	}
	i := strings.LastIndex(key[:min(len(key), 8)], "_") + 1
	return key[:i] + strings.Repeat("*", len(key)-i-4) + key[len(key)-4:]
}

// params are a form body in Stripe's bracket syntax.
type params struct {
	flat     map[string]string
	metadata map[string]string
	lists    map[string][]string
}

var (
	listKey = regexp.MustCompile(`^([a-z_]+)\[(\d*)\]$`)
	metaKey = regexp.MustCompile(`^metadata\[(.+)\]$`)
)

// parseParams splits a form into parameters, refusing any not in allowed
// (names like "metadata", "payment_method_types" or
// "automatic_payment_methods[enabled]").
func parseParams(form url.Values, allowed []string) (params, *apiError) {
	p := params{flat: map[string]string{}, metadata: map[string]string{}, lists: map[string][]string{}}
	keys := make([]string, 0, len(form))
	for k := range form {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	type item struct {
		idx int
		v   string
	}
	lists := map[string][]item{}
	for _, k := range keys {
		v := form[k][0]
		switch m := [][]string{metaKey.FindStringSubmatch(k), listKey.FindStringSubmatch(k)}; {
		case m[0] != nil && slices.Contains(allowed, "metadata"):
			if len(m[0][1]) > 40 {
				return p, invalid("parameter_invalid_string", k, "Metadata keys can have at most 40 characters.")
			}
			if len(v) > 500 {
				return p, invalid("parameter_invalid_string", k, "Metadata values can have at most 500 characters.")
			}
			p.metadata[m[0][1]] = v
		case m[1] != nil && slices.Contains(allowed, m[1][1]):
			idx := len(lists[m[1][1]])
			if m[1][2] != "" {
				idx, _ = strconv.Atoi(m[1][2])
			}
			lists[m[1][1]] = append(lists[m[1][1]], item{idx, v})
		case slices.Contains(allowed, k) && !slices.Contains([]string{"metadata", "payment_method_types", "expand"}, k):
			p.flat[k] = v
		default:
			return p, invalid("parameter_unknown", k, "Received unknown parameter: %s", k)
		}
	}
	if len(p.metadata) > 50 {
		return p, invalid("parameter_invalid_string", "metadata", "Metadata can have at most 50 keys.")
	}
	for name, items := range lists {
		sort.SliceStable(items, func(i, j int) bool { return items[i].idx < items[j].idx })
		for _, it := range items {
			p.lists[name] = append(p.lists[name], it.v)
		}
	}
	return p, nil
}

// route is one endpoint.
type route struct {
	perm    string
	allowed []string
	post    func(s *Service, p params, key string) (int, any)
	get     func(s *Service, id string) (int, any)
}

var (
	customersRoute = &route{
		perm:    "customer_write",
		allowed: []string{"email", "name", "description", "phone", "metadata", "expand"},
		post:    (*Service).createCustomer,
	}
	customerRoute = &route{perm: "customer_read", get: (*Service).getCustomer}
	intentsRoute  = &route{
		perm: "payment_intent_write",
		allowed: []string{"amount", "currency", "customer", "description", "receipt_email", "metadata", "payment_method",
			"payment_method_types", "confirm", "return_url", "capture_method", "statement_descriptor", "expand",
			"automatic_payment_methods[enabled]", "automatic_payment_methods[allow_redirects]"},
		post: (*Service).createPaymentIntent,
	}
	intentRoute = &route{perm: "payment_intent_read", get: (*Service).getPaymentIntent}
)

func routeOf(method, path string) (*route, string) {
	switch {
	case method == http.MethodPost && path == "/v1/customers":
		return customersRoute, ""
	case method == http.MethodPost && path == "/v1/payment_intents":
		return intentsRoute, ""
	case method == http.MethodGet && strings.HasPrefix(path, "/v1/customers/"):
		return customerRoute, strings.TrimPrefix(path, "/v1/customers/")
	case method == http.MethodGet && strings.HasPrefix(path, "/v1/payment_intents/"):
		return intentRoute, strings.TrimPrefix(path, "/v1/payment_intents/")
	}
	return nil, ""
}

func (s *Service) createCustomer(p params, _ string) (int, any) {
	if e := p.flat["email"]; e != "" && !strings.Contains(e, "@") {
		return errorBody(invalid("email_invalid", "email", "Invalid email address: %s", e))
	}
	c := &Customer{ID: "cus_" + randID(14), Email: p.flat["email"], Name: p.flat["name"], Description: p.flat["description"],
		Metadata: p.metadata, Created: time.Now().Unix()}
	s.customers = append(s.customers, c)
	return http.StatusOK, customerJSON(c)
}

func (s *Service) getCustomer(id string) (int, any) {
	for _, c := range s.customers {
		if c.ID == id {
			return http.StatusOK, customerJSON(c)
		}
	}
	_, out := errorBody(invalid("resource_missing", "id", "No such customer: '%s'", id))
	return http.StatusNotFound, out
}

func customerJSON(c *Customer) obj {
	return obj{"id": c.ID, "object": "customer", "address": nil, "balance": 0, "created": c.Created, "currency": nil,
		"default_source": nil, "delinquent": false, "description": nilIfEmpty(c.Description), "email": nilIfEmpty(c.Email),
		"invoice_prefix": strings.ToUpper(c.ID[4:12]), "livemode": false, "metadata": orEmpty(c.Metadata),
		"name": nilIfEmpty(c.Name), "phone": nil, "preferred_locales": []string{}, "shipping": nil, "tax_exempt": "none", "test_clock": nil}
}

// minimumAmount is the smallest charge per currency, in minor units.
var minimumAmount = map[string]int64{"usd": 50, "eur": 50, "gbp": 30, "cad": 50, "aud": 50, "chf": 50, "jpy": 50, "sek": 300}

// testCards are the test-mode payment methods the fake knows, with the
// decline code they produce ("" succeeds).
var testCards = map[string]string{
	"pm_card_visa":                            "",
	"pm_card_mastercard":                      "",
	"pm_card_chargeDeclined":                  "generic_decline",
	"pm_card_chargeDeclinedInsufficientFunds": "insufficient_funds",
}

func (s *Service) createPaymentIntent(p params, key string) (int, any) {
	raw, ok := p.flat["amount"]
	if !ok {
		return errorBody(invalid("parameter_missing", "amount", "Missing required param: amount."))
	}
	amount, err := strconv.ParseInt(raw, 10, 64)
	if err != nil {
		return errorBody(invalid("parameter_invalid_integer", "amount", "Invalid integer: %s", raw))
	}
	cur, ok := p.flat["currency"]
	if !ok {
		return errorBody(invalid("parameter_missing", "currency", "Missing required param: currency."))
	}
	minimum, ok := minimumAmount[cur]
	if !ok {
		return errorBody(invalid("", "currency", "Invalid currency: %s. Stripe currently supports these currencies: %s", cur, strings.Join(sortedKeys(minimumAmount), ", ")))
	}
	if amount < minimum {
		return errorBody(invalid("amount_too_small", "amount", "Amount must be at least %d %s", minimum, cur))
	}
	if c := p.flat["customer"]; c != "" && !slices.ContainsFunc(s.customers, func(x *Customer) bool { return x.ID == c }) {
		return errorBody(invalid("resource_missing", "customer", "No such customer: '%s'", c))
	}
	pm := p.flat["payment_method"]
	decline, known := testCards[pm]
	if pm != "" && !known {
		return errorBody(invalid("resource_missing", "payment_method", "No such PaymentMethod: '%s'", pm))
	}
	confirm := p.flat["confirm"] == "true"
	automatic := len(p.lists["payment_method_types"]) == 0
	if confirm {
		switch {
		case pm == "":
			return errorBody(invalid("", "", "You cannot confirm this PaymentIntent because it's missing a payment method. You can either update the PaymentIntent with a payment method and then confirm it again, or confirm it again directly with a payment method or ConfirmationToken."))
		case automatic && p.flat["return_url"] == "" && p.flat["automatic_payment_methods[allow_redirects]"] != "never":
			return errorBody(invalid("", "", "This PaymentIntent is configured to accept payment methods enabled in your Dashboard. Because some of these payment methods might redirect your customer off of your page, you must provide a `return_url`. If you don't want to accept redirect-based payment methods, set `automatic_payment_methods[enabled]` to `true` and `automatic_payment_methods[allow_redirects]` to `never` when creating Setup Intents and Payment Intents."))
		}
	}
	pi := &PaymentIntent{ID: "pi_3" + randID(23), Amount: amount, Currency: cur, Customer: p.flat["customer"], Description: p.flat["description"],
		PaymentMethod: pm, Status: "requires_payment_method", Metadata: p.metadata, Created: time.Now().Unix(), IdempotencyKey: key}
	switch {
	case confirm && decline == "":
		pi.Status, pi.AmountReceived = "succeeded", amount
	case confirm:
		pi.PaymentMethod = ""
	case pm != "":
		pi.Status = "requires_confirmation"
	}
	s.intents = append(s.intents, pi)
	out := intentJSON(pi, p, automatic)
	if confirm && decline != "" {
		e := &apiError{status: http.StatusPaymentRequired, Type: "card_error", Code: "card_declined", DeclineCode: decline,
			Message: "Your card was declined.", DocURL: "https://stripe.com/docs/error-codes/card-declined"}
		if decline == "insufficient_funds" {
			e.Message = "Your card has insufficient funds."
		}
		out["last_payment_error"] = obj{"type": e.Type, "code": e.Code, "decline_code": e.DeclineCode, "message": e.Message}
		e.PaymentIntent = out
		return errorBody(e)
	}
	return http.StatusOK, out
}

func (s *Service) getPaymentIntent(id string) (int, any) {
	for _, pi := range s.intents {
		if pi.ID == id {
			return http.StatusOK, intentJSON(pi, params{}, pi.PaymentMethod == "")
		}
	}
	_, out := errorBody(invalid("resource_missing", "intent", "No such payment_intent: '%s'", id))
	return http.StatusNotFound, out
}

func intentJSON(pi *PaymentIntent, p params, automatic bool) obj {
	types := p.lists["payment_method_types"]
	var apm any
	if automatic {
		types = []string{"card", "link"}
		apm = obj{"enabled": true, "allow_redirects": orDefault(p.flat["automatic_payment_methods[allow_redirects]"], "always")}
	}
	var latestCharge any
	if pi.Status == "succeeded" {
		latestCharge = "ch_3" + pi.ID[4:]
	}
	return obj{"id": pi.ID, "object": "payment_intent", "amount": pi.Amount, "amount_capturable": 0, "amount_received": pi.AmountReceived,
		"automatic_payment_methods": apm, "capture_method": "automatic_async", "client_secret": pi.ID + "_secret_" + randID(25),
		"confirmation_method": "automatic", "created": pi.Created, "currency": pi.Currency, "customer": nilIfEmpty(pi.Customer),
		"description": nilIfEmpty(pi.Description), "last_payment_error": nil, "latest_charge": latestCharge, "livemode": false,
		"metadata": orEmpty(pi.Metadata), "payment_method": nilIfEmpty(pi.PaymentMethod), "payment_method_types": types,
		"receipt_email": nilIfEmpty(p.flat["receipt_email"]), "status": pi.Status}
}

type obj = map[string]any

func errorBody(e *apiError) (int, any) { return e.status, obj{"error": e} }

func writeError(w http.ResponseWriter, e *apiError) {
	status, out := errorBody(e)
	writeJSON(w, status, out)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func orEmpty(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// randID returns n characters of Stripe-like base62 ids.
func randID(n int) string {
	const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}
