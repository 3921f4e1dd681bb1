package stripe

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const sk = "sk_test_51ServiceTestKey00001234"

type call struct {
	method, path, ct, auth, idem, body string
}

func (c call) do(s *Service) *httptest.ResponseRecorder {
	r := httptest.NewRequest(c.method, c.path, strings.NewReader(c.body))
	if c.ct == "" && c.body != "" {
		c.ct = "application/x-www-form-urlencoded"
	}
	if c.ct != "" {
		r.Header.Set("Content-Type", c.ct)
	}
	if c.auth == "" {
		c.auth = "Bearer " + sk
	}
	if c.auth != "-" {
		r.Header.Set("Authorization", c.auth)
	}
	if c.idem != "" {
		r.Header.Set("Idempotency-Key", c.idem)
	}
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	return w
}

func TestAPI_Errors(t *testing.T) {
	tests := []struct {
		name   string
		call   call
		status int
		want   string
	}{
		{name: "no_key", call: call{method: "POST", path: "/v1/customers", auth: "-", body: "email=a@b.c"}, status: 401,
			want: `{"error":{"type":"invalid_request_error","message":"You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for details, or we can help at https://support.stripe.com/."}}`},
		{name: "wrong_key", call: call{method: "POST", path: "/v1/customers", auth: "Bearer sk_test_51WrongKey000000abcd", body: "email=a@b.c"}, status: 401,
			want: `{"error":{"type":"invalid_request_error","message":"Invalid API Key provided: sk_test_****************abcd"}}`},
		{name: "key_without_scheme", call: call{method: "POST", path: "/v1/customers", auth: sk, body: "email=a@b.c"}, status: 401,
			want: `{"error":{"type":"invalid_request_error","message":"You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for details, or we can help at https://support.stripe.com/."}}`},
		{name: "json_body", call: call{method: "POST", path: "/v1/customers", ct: "application/json", body: `{"email":"a@b.c"}`}, status: 400,
			want: `{"error":{"type":"invalid_request_error","message":"Invalid request: unsupported Content-Type application/json. If error persists and you need assistance, please contact support@stripe.com."}}`},
		{name: "unknown_param", call: call{method: "POST", path: "/v1/customers", body: "email=a@b.c&plan=pro"}, status: 400,
			want: `{"error":{"type":"invalid_request_error","code":"parameter_unknown","param":"plan","message":"Received unknown parameter: plan","doc_url":"https://stripe.com/docs/error-codes/parameter-unknown"}}`},
		{name: "bad_email", call: call{method: "POST", path: "/v1/customers", body: "email=nope"}, status: 400,
			want: `{"error":{"type":"invalid_request_error","code":"email_invalid","param":"email","message":"Invalid email address: nope","doc_url":"https://stripe.com/docs/error-codes/email-invalid"}}`},
		{name: "missing_amount", call: call{method: "POST", path: "/v1/payment_intents", body: "currency=usd"}, status: 400,
			want: `{"error":{"type":"invalid_request_error","code":"parameter_missing","param":"amount","message":"Missing required param: amount.","doc_url":"https://stripe.com/docs/error-codes/parameter-missing"}}`},
		{name: "amount_not_integer", call: call{method: "POST", path: "/v1/payment_intents", body: "amount=12.50&currency=usd"}, status: 400,
			want: `{"error":{"type":"invalid_request_error","code":"parameter_invalid_integer","param":"amount","message":"Invalid integer: 12.50","doc_url":"https://stripe.com/docs/error-codes/parameter-invalid-integer"}}`},
		{name: "uppercase_currency", call: call{method: "POST", path: "/v1/payment_intents", body: "amount=100&currency=USD"}, status: 400,
			want: `{"error":{"type":"invalid_request_error","param":"currency","message":"Invalid currency: USD. Stripe currently supports these currencies: aud, cad, chf, eur, gbp, jpy, sek, usd"}}`},
		{name: "no_such_customer", call: call{method: "POST", path: "/v1/payment_intents", body: "amount=100&currency=usd&customer=cus_x"}, status: 400,
			want: `{"error":{"type":"invalid_request_error","code":"resource_missing","param":"customer","message":"No such customer: 'cus_x'","doc_url":"https://stripe.com/docs/error-codes/resource-missing"}}`},
		{name: "confirm_needs_return_url", call: call{method: "POST", path: "/v1/payment_intents", body: "amount=100&currency=usd&payment_method=pm_card_visa&confirm=true"}, status: 400,
			want: "This PaymentIntent is configured to accept payment methods enabled in your Dashboard."},
		{name: "unknown_endpoint", call: call{method: "POST", path: "/v1/charges", body: "amount=100"}, status: 404,
			want: `{"error":{"type":"invalid_request_error","message":"Unrecognized request URL (POST: /v1/charges). Please see https://stripe.com/docs or we can help at https://support.stripe.com/."}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New()
			s.AddSecretKey(sk)
			w := tt.call.do(s)
			require.Equal(t, tt.status, w.Code, w.Body.String())
			if strings.HasPrefix(tt.want, "{") {
				require.JSONEq(t, tt.want, w.Body.String())
			} else {
				require.Contains(t, w.Body.String(), tt.want)
			}
			require.Empty(t, s.Customers())
			require.Empty(t, s.PaymentIntents())
		})
	}
}

func TestBasicAuth(t *testing.T) {
	s := New()
	s.AddSecretKey(sk)
	r := httptest.NewRequest("POST", "/v1/customers", strings.NewReader("email=a@b.c"))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.SetBasicAuth(sk, "")
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	require.Equal(t, 200, w.Code, w.Body.String())
}

func TestIdempotency(t *testing.T) {
	s := New()
	s.AddSecretKey(sk)
	first := call{method: "POST", path: "/v1/payment_intents", idem: "k1", body: "amount=2000&currency=usd&metadata[order]=42"}.do(s)
	require.Equal(t, 200, first.Code, first.Body.String())
	require.Empty(t, first.Header().Get("Idempotent-Replayed"))
	require.Equal(t, "k1", first.Header().Get("Idempotency-Key"))

	// Same key, same parameters in another order: the saved response.
	again := call{method: "POST", path: "/v1/payment_intents", idem: "k1", body: "metadata[order]=42&currency=usd&amount=2000"}.do(s)
	require.Equal(t, 200, again.Code)
	require.Equal(t, "true", again.Header().Get("Idempotent-Replayed"))
	require.Equal(t, first.Body.String(), again.Body.String())
	require.Len(t, s.PaymentIntents(), 1)

	// Same key, different parameters.
	w := call{method: "POST", path: "/v1/payment_intents", idem: "k1", body: "amount=2001&currency=usd&metadata[order]=42"}.do(s)
	require.Equal(t, 400, w.Code)
	require.JSONEq(t, `{"error":{"type":"idempotency_error","message":"Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than 'k1' if you meant to execute a different request."}}`, w.Body.String())
	require.Equal(t, "false", w.Header().Get("Stripe-Should-Retry"))

	// Same key, another endpoint.
	w = call{method: "POST", path: "/v1/customers", idem: "k1", body: "email=a@b.c"}.do(s)
	require.Equal(t, 400, w.Code)
	require.JSONEq(t, `{"error":{"type":"idempotency_error","message":"Keys for idempotent requests can only be used for the same endpoint they were first used for ('/v1/payment_intents' vs '/v1/customers'). Try using a key other than 'k1' if you meant to execute a different request."}}`, w.Body.String())
	require.Len(t, s.PaymentIntents(), 1)
	require.Empty(t, s.Customers())

	// A parameter error saves nothing: the corrected request may reuse
	// the key.
	w = call{method: "POST", path: "/v1/customers", idem: "k2", body: "email=a@b.c&plan=x"}.do(s)
	require.Equal(t, 400, w.Code)
	w = call{method: "POST", path: "/v1/customers", idem: "k2", body: "email=a@b.c"}.do(s)
	require.Equal(t, 200, w.Code, w.Body.String())

	// A declined card ran the endpoint: the 402 is saved and replayed.
	d1 := call{method: "POST", path: "/v1/payment_intents", idem: "k3", body: "amount=500&currency=usd&payment_method=pm_card_chargeDeclined&payment_method_types[]=card&confirm=true"}.do(s)
	require.Equal(t, 402, d1.Code)
	d2 := call{method: "POST", path: "/v1/payment_intents", idem: "k3", body: "amount=500&currency=usd&payment_method=pm_card_chargeDeclined&payment_method_types[]=card&confirm=true"}.do(s)
	require.Equal(t, 402, d2.Code)
	require.Equal(t, d1.Body.String(), d2.Body.String())
	require.Len(t, s.PaymentIntents(), 2)
	var e struct {
		Error struct {
			Code          string `json:"code"`
			DeclineCode   string `json:"decline_code"`
			PaymentIntent struct {
				Status string `json:"status"`
			} `json:"payment_intent"`
		} `json:"error"`
	}
	require.NoError(t, json.Unmarshal(d1.Body.Bytes(), &e))
	require.Equal(t, "generic_decline", e.Error.DeclineCode)
	require.Equal(t, "requires_payment_method", e.Error.PaymentIntent.Status)
}

func TestLoseResponses(t *testing.T) {
	s := New()
	s.AddSecretKey(sk)
	s.LoseResponses("/v1/payment_intents", 1)
	require.PanicsWithValue(t, http.ErrAbortHandler, func() {
		call{method: "POST", path: "/v1/payment_intents", idem: "k", body: "amount=700&currency=usd"}.do(s)
	})
	require.Len(t, s.PaymentIntents(), 1) // created, though the client never heard
	w := call{method: "POST", path: "/v1/payment_intents", idem: "k", body: "amount=700&currency=usd"}.do(s)
	require.Equal(t, "true", w.Header().Get("Idempotent-Replayed"))
	require.Contains(t, w.Body.String(), s.PaymentIntents()[0].ID)
	require.Len(t, s.PaymentIntents(), 1)
}

func TestConfirmedPayment(t *testing.T) {
	s := New()
	s.AddSecretKey(sk)
	c := call{method: "POST", path: "/v1/customers", body: "email=ada@example.com&name=Ada"}.do(s)
	var cus struct{ ID string }
	require.NoError(t, json.Unmarshal(c.Body.Bytes(), &cus))
	w := call{method: "POST", path: "/v1/payment_intents", body: "amount=1500&currency=gbp&customer=" + cus.ID + "&payment_method=pm_card_visa&payment_method_types[0]=card&confirm=true"}.do(s)
	require.Equal(t, 200, w.Code, w.Body.String())
	var pi struct {
		ID, Status, Customer string
		AmountReceived       int64    `json:"amount_received"`
		Types                []string `json:"payment_method_types"`
	}
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &pi))
	require.Equal(t, "succeeded", pi.Status)
	require.Equal(t, cus.ID, pi.Customer)
	require.EqualValues(t, 1500, pi.AmountReceived)
	require.Equal(t, []string{"card"}, pi.Types)

	g := call{method: "GET", path: "/v1/payment_intents/" + pi.ID}.do(s)
	require.Equal(t, 200, g.Code)
	require.Contains(t, g.Body.String(), `"status":"succeeded"`)
}

func TestRestrictedKey(t *testing.T) {
	s := New()
	s.AddRestrictedKey("rk_test_51Restricted000000wxyz", "customer_write")
	w := call{method: "GET", path: "/v1/customers/cus_x", auth: "Bearer rk_test_51Restricted000000wxyz"}.do(s)
	require.Equal(t, 404, w.Code) // customer_write includes customer_read
	w = call{method: "POST", path: "/v1/payment_intents", auth: "Bearer rk_test_51Restricted000000wxyz", body: "amount=100&currency=usd"}.do(s)
	require.Equal(t, 403, w.Code)
	require.JSONEq(t, `{"error":{"type":"invalid_request_error","message":"The provided key 'rk_test_******************wxyz' does not have the required permissions for this endpoint on account 'acct_1AileronTest00'. Having the 'rak_payment_intent_write' permission would allow this request to continue."}}`, w.Body.String())
}

// FuzzServeHTTP sends arbitrary paths, content types and bodies: the fake
// must answer, never panic.
func FuzzServeHTTP(f *testing.F) {
	f.Add("/v1/payment_intents", "application/x-www-form-urlencoded", "k", "amount=2000&currency=usd&metadata[a]=b&payment_method_types[0]=card&confirm=true&payment_method=pm_card_visa")
	f.Add("/v1/customers", "application/x-www-form-urlencoded", "", "email=a@b.c&expand[]=x&metadata[%zz]=1")
	f.Add("/v1/customers/cus_1", "", "", "")
	f.Fuzz(func(t *testing.T, path, ct, key, body string) {
		s := New()
		s.AddSecretKey(sk)
		for _, method := range []string{"GET", "POST"} {
			r := &http.Request{Method: method, URL: &url.URL{Path: path}, Header: http.Header{}, Body: io.NopCloser(strings.NewReader(body))}
			r.Header.Set("Authorization", "Bearer "+sk)
			r.Header.Set("Content-Type", ct)
			r.Header.Set("Idempotency-Key", key)
			s.ServeHTTP(httptest.NewRecorder(), r)
		}
	})
}
