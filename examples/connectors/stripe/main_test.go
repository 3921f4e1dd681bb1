package main

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"aileron.dev/aileron/examples/services/stripe"
	"aileron.dev/aileron/manifest"
	"aileron.dev/aileron/sdk"
	"aileron.dev/aileron/sdk/sdktest"
)

const key = "sk_test_51AileronUnitTestKey0000"

func TestMain(m *testing.M) {
	register()
	os.Exit(m.Run())
}

func TestManifestMatchesHandlers(t *testing.T) {
	m, err := manifest.LoadManifest("manifest.toml")
	require.NoError(t, err)
	require.Equal(t, sdk.Intents(), slices.Sorted(slices.Values(m.Provides.Intents)))
}

func newHost() (*stripe.Service, *sdktest.Host) {
	svc := stripe.New()
	svc.AddSecretKey(key)
	return svc, &sdktest.Host{Service: svc, Hosts: []string{"api.stripe.com:443"}, Credential: key}
}

func TestCreateCustomerThenCharge(t *testing.T) {
	svc, h := newHost()
	out, err := createCustomer(h.Call("run-1/customer", 1), customerInput{Email: "ada@example.com", Name: "Ada", Metadata: map[string]string{"plan": "pro"}})
	require.NoError(t, err)
	cus := out.(customerOutput)
	require.True(t, strings.HasPrefix(cus.ID, "cus_"))
	require.Equal(t, "aileron/run-1/customer/create_customer", cus.IdempotencyKey)
	require.False(t, cus.Replayed)

	out, err = createPaymentIntent(h.Call("run-1/charge", 1), intentInput{Amount: 2500, Currency: "USD", Customer: cus.ID, PaymentMethod: "pm_card_visa", Confirm: true})
	require.NoError(t, err)
	pi := out.(intentOutput)
	require.Equal(t, "succeeded", pi.Status)
	require.EqualValues(t, 2500, pi.AmountReceived)
	require.Equal(t, "usd", pi.Currency)

	seen := svc.Seen()
	require.Len(t, seen, 2)
	for _, r := range seen {
		require.Equal(t, "Bearer "+key, r.Header.Get("Authorization"))
		require.Equal(t, "application/x-www-form-urlencoded", r.Header.Get("Content-Type"))
	}
	require.Equal(t, "pro", seen[0].Form.Get("metadata[plan]"))
	require.Equal(t, "card", seen[1].Form.Get("payment_method_types[0]"))
	require.Equal(t, []stripe.Customer{{ID: cus.ID, Email: "ada@example.com", Name: "Ada", Metadata: map[string]string{"plan": "pro"}, Created: svc.Customers()[0].Created}}, svc.Customers())
}

// A retried step (same invocation id, next attempt) sends the same key, so
// Stripe replays the first PaymentIntent instead of charging again; a new
// run charges anew.
func TestRetriedStepDoesNotChargeTwice(t *testing.T) {
	svc, h := newHost()
	in := intentInput{Amount: 4200, Currency: "eur", PaymentMethod: "pm_card_visa", Confirm: true}
	first, err := createPaymentIntent(h.Call("run-7/charge", 1), in)
	require.NoError(t, err)
	again, err := createPaymentIntent(h.Call("run-7/charge", 2), in)
	require.NoError(t, err)
	require.Equal(t, first.(intentOutput).ID, again.(intentOutput).ID)
	require.False(t, first.(intentOutput).Replayed)
	require.True(t, again.(intentOutput).Replayed)
	require.Len(t, svc.PaymentIntents(), 1)

	other, err := createPaymentIntent(h.Call("run-8/charge", 1), in)
	require.NoError(t, err)
	require.NotEqual(t, first.(intentOutput).ID, other.(intentOutput).ID)
	require.Len(t, svc.PaymentIntents(), 2)

	// The same step retried with different input is refused, not charged.
	in.Amount = 9900
	_, err = createPaymentIntent(h.Call("run-7/charge", 3), in)
	require.ErrorContains(t, err, "idempotency_error: Stripe: Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than 'aileron/run-7/charge/create_payment_intent' if you meant to execute a different request. (type idempotency_error, request req_")
	require.Len(t, svc.PaymentIntents(), 2)
}

// The response to the first request is lost after Stripe created the
// object; the connector retries with the same key and gets the saved
// response.
func TestLostResponseRetriedWithSameKey(t *testing.T) {
	svc, h := newHost()
	svc.LoseResponses("/v1/payment_intents", 1)
	out, err := createPaymentIntent(h.Call("run-9/charge", 1), intentInput{Amount: 1000, Currency: "usd"})
	require.NoError(t, err)
	require.True(t, out.(intentOutput).Replayed)
	require.Len(t, svc.PaymentIntents(), 1)
	require.Equal(t, out.(intentOutput).ID, svc.PaymentIntents()[0].ID)
	seen := svc.Seen()
	require.Len(t, seen, 2)
	require.Equal(t, seen[0].Header.Get("Idempotency-Key"), seen[1].Header.Get("Idempotency-Key"))
}

func TestStripe_Errors(t *testing.T) {
	tests := []struct {
		name   string
		cred   string
		in     intentInput
		prefix string
	}{
		{name: "zero_amount", in: intentInput{Currency: "usd"}, prefix: "invalid_input: amount must be a positive integer in the currency's smallest unit"},
		{name: "bad_currency_input", in: intentInput{Amount: 100, Currency: "dollars"}, prefix: "invalid_input: currency must be a three-letter ISO code, e.g. usd"},
		{name: "confirm_without_method", in: intentInput{Amount: 100, Currency: "usd", Confirm: true}, prefix: "invalid_input: confirm needs a payment_method"},
		{name: "amount_too_small", in: intentInput{Amount: 10, Currency: "usd"}, prefix: "amount_too_small: Stripe: Amount must be at least 50 usd (type invalid_request_error, param amount, request req_"},
		{name: "unknown_customer", in: intentInput{Amount: 100, Currency: "usd", Customer: "cus_nope"}, prefix: "resource_missing: Stripe: No such customer: 'cus_nope' (type invalid_request_error, param customer, request req_"},
		{name: "declined", in: intentInput{Amount: 100, Currency: "usd", PaymentMethod: "pm_card_chargeDeclined", Confirm: true}, prefix: "card_declined: Stripe: Your card was declined. (type card_error, decline_code generic_decline, request req_"},
		{name: "wrong_key", cred: "sk_test_51AileronWrongKey99999", in: intentInput{Amount: 100, Currency: "usd"}, prefix: "unauthorized: Stripe: Invalid API Key provided: sk_test_******************9999 (type invalid_request_error, request req_"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, h := newHost()
			if tt.cred != "" {
				h.Credential = tt.cred
			}
			_, err := createPaymentIntent(h.Call("run-1/charge", 1), tt.in)
			require.Error(t, err)
			require.True(t, strings.HasPrefix(err.Error(), tt.prefix), "got %q", err)
		})
	}
}

func TestRestrictedKeyWithoutPermission(t *testing.T) {
	svc := stripe.New()
	svc.AddRestrictedKey("rk_test_51AileronRestricted0001", "customer_write")
	h := &sdktest.Host{Service: svc, Hosts: []string{"api.stripe.com:443"}, Credential: "rk_test_51AileronRestricted0001"}
	_, err := createCustomer(h.Call("r/c", 1), customerInput{Email: "a@example.com"})
	require.NoError(t, err)
	_, err = createPaymentIntent(h.Call("r/p", 1), intentInput{Amount: 100, Currency: "usd"})
	require.ErrorContains(t, err, "forbidden: Stripe: The provided key 'rk_test_*******************0001' does not have the required permissions for this endpoint on account 'acct_1AileronTest00'. Having the 'rak_payment_intent_write' permission would allow this request to continue.")
}
