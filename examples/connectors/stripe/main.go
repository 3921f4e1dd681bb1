// Command stripe is an example connector for the Stripe API: it creates
// customers and PaymentIntents, following Stripe's conventions.
//
// # Authentication
//
// Stripe takes the secret key either as a bearer token or as the user name
// of HTTP basic auth. This connector declares an api_key credential and
// sends "Authorization: Bearer {{aileron.credential}}" (sdk.Bearer()): the
// broker substitutes the raw key and redacts that exact string from
// responses. With basic auth the broker would put base64("sk_...:") on the
// wire, and a response quoting the raw key would not be redacted.
//
// # Idempotency
//
// Every POST carries an Idempotency-Key derived from the invocation id,
// which the runtime keeps the same when it retries a step, so a retried
// step never creates a second customer or charges twice: Stripe replays
// the first response. The connector itself retries a request whose
// response was lost, or that Stripe marks as retryable, with the same key.
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"aileron.dev/aileron/sdk"
	"aileron.dev/aileron/sdk/abi"
)

const api = "https://api.stripe.com/v1/"

// Retries of one request within an invocation (same Idempotency-Key).
const (
	maxAttempts = 3
	backoff     = 500 * time.Millisecond // doubled after each attempt
)

type customerInput struct {
	Email       string            `json:"email"`
	Name        string            `json:"name"`
	Description string            `json:"description"`
	Metadata    map[string]string `json:"metadata"`
}

type customerOutput struct {
	ID          string `json:"id"`
	Email       string `json:"email"`
	Name        string `json:"name"`
	Description string `json:"description"`
	Created     int64  `json:"created"`
	// IdempotencyKey is the key the request was sent with; Replayed
	// says Stripe answered with the saved result of an earlier request.
	IdempotencyKey string `json:"idempotency_key"`
	Replayed       bool   `json:"replayed"`
}

type intentInput struct {
	// Amount is in the currency's smallest unit (cents for usd).
	Amount   int64  `json:"amount"`
	Currency string `json:"currency"`
	Customer string `json:"customer"`
	// PaymentMethod, e.g. "pm_card_visa" in test mode; with Confirm the
	// payment is attempted at once.
	PaymentMethod string            `json:"payment_method"`
	Confirm       bool              `json:"confirm"`
	Description   string            `json:"description"`
	ReceiptEmail  string            `json:"receipt_email"`
	Metadata      map[string]string `json:"metadata"`
}

type intentOutput struct {
	ID             string `json:"id"`
	Status         string `json:"status"`
	Amount         int64  `json:"amount"`
	AmountReceived int64  `json:"amount_received"`
	Currency       string `json:"currency"`
	Customer       string `json:"customer"`
	Description    string `json:"description"`
	PaymentMethod  string `json:"payment_method"`
	LatestCharge   string `json:"latest_charge"`
	IdempotencyKey string `json:"idempotency_key"`
	Replayed       bool   `json:"replayed"`
}

func main() {
	register()
	sdk.Main()
}

func register() {
	sdk.Handle("create_customer", createCustomer)
	sdk.Handle("create_payment_intent", createPaymentIntent)
}

func createCustomer(c *sdk.Call, in customerInput) (any, error) {
	if in.Email == "" {
		return nil, sdk.Errorf("invalid_input", "email is required")
	}
	form := url.Values{"email": {in.Email}}
	setIf(form, "name", in.Name)
	setIf(form, "description", in.Description)
	setMetadata(form, in.Metadata)
	var out customerOutput
	key := idempotencyKey(c, "create_customer")
	replayed, err := post(c, "customers", form, key, &out)
	if err != nil {
		return nil, err
	}
	out.IdempotencyKey, out.Replayed = key, replayed
	audit(c, "customer_created", map[string]any{"customer": out.ID, "replayed": replayed})
	return out, nil
}

func createPaymentIntent(c *sdk.Call, in intentInput) (any, error) {
	switch {
	case in.Amount <= 0:
		return nil, sdk.Errorf("invalid_input", "amount must be a positive integer in the currency's smallest unit")
	case len(in.Currency) != 3:
		return nil, sdk.Errorf("invalid_input", "currency must be a three-letter ISO code, e.g. usd")
	case in.Confirm && in.PaymentMethod == "":
		return nil, sdk.Errorf("invalid_input", "confirm needs a payment_method")
	}
	form := url.Values{"amount": {strconv.FormatInt(in.Amount, 10)}, "currency": {strings.ToLower(in.Currency)}}
	setIf(form, "customer", in.Customer)
	setIf(form, "description", in.Description)
	setIf(form, "receipt_email", in.ReceiptEmail)
	setMetadata(form, in.Metadata)
	if in.PaymentMethod != "" {
		// A server-side confirmation has no page to redirect to: accept
		// cards only, so Stripe does not ask for a return_url.
		form.Set("payment_method", in.PaymentMethod)
		form.Set("payment_method_types[0]", "card")
	}
	if in.Confirm {
		form.Set("confirm", "true")
	}
	var out intentOutput
	key := idempotencyKey(c, "create_payment_intent")
	replayed, err := post(c, "payment_intents", form, key, &out)
	if err != nil {
		return nil, err
	}
	out.IdempotencyKey, out.Replayed = key, replayed
	audit(c, "payment_intent_created", map[string]any{"payment_intent": out.ID, "status": out.Status, "amount": out.Amount, "currency": out.Currency, "replayed": replayed})
	return out, nil
}

// idempotencyKey is the same for every attempt of one step of one run, and
// different for every other step and run. Stripe allows 255 characters;
// a longer id is hashed.
func idempotencyKey(c *sdk.Call, op string) string {
	k := "aileron/" + c.ID + "/" + op
	if len(k) > 255 {
		sum := sha256.Sum256([]byte(k))
		k = "aileron/sha256/" + hex.EncodeToString(sum[:])
	}
	return k
}

// stripeError is Stripe's error object.
type stripeError struct {
	Error struct {
		Type          string `json:"type"`
		Code          string `json:"code"`
		DeclineCode   string `json:"decline_code"`
		Param         string `json:"param"`
		Message       string `json:"message"`
		PaymentIntent *struct {
			ID     string `json:"id"`
			Status string `json:"status"`
		} `json:"payment_intent"`
	} `json:"error"`
}

// post sends a form with the idempotency key, retrying what is safe to
// retry, and decodes a 200 into out. It reports whether Stripe replayed a
// saved response.
func post(c *sdk.Call, path string, form url.Values, key string, out any) (bool, error) {
	req := sdk.Request{
		Method: "POST",
		URL:    api + path,
		Headers: map[string]string{
			"Authorization":   sdk.Bearer(),
			"Content-Type":    "application/x-www-form-urlencoded",
			"Idempotency-Key": key,
		},
		Body: []byte(form.Encode()),
	}
	wait := backoff
	for attempt := 1; ; attempt++ {
		resp, err := c.HTTP.Do(req)
		retry, why := retryable(resp, err)
		if retry && attempt < maxAttempts {
			c.Log.Warn("retrying Stripe request with the same idempotency key", "path", path, "attempt", attempt, "reason", why)
			time.Sleep(wait)
			wait *= 2
			continue
		}
		if err != nil {
			return false, err
		}
		replayed := resp.Header("Idempotent-Replayed") == "true"
		if resp.Status == 200 {
			return replayed, resp.Decode(out)
		}
		return false, decodeError(path, resp)
	}
}

// retryable says whether a request may be sent again with the same key: a
// response lost in transit, a conflict with a concurrent request on the
// key, a rate limit or a server error, unless Stripe says otherwise with
// Stripe-Should-Retry.
func retryable(resp *sdk.Response, err error) (bool, string) {
	if err != nil {
		var ae *abi.Error
		return errors.As(err, &ae) && ae.Code == "unavailable", "response lost: " + err.Error()
	}
	switch resp.Header("Stripe-Should-Retry") {
	case "true":
		return true, "Stripe-Should-Retry"
	case "false":
		return false, ""
	}
	return resp.Status == 409 || resp.Status == 429 || resp.Status >= 500, "HTTP " + strconv.Itoa(resp.Status)
}

func decodeError(path string, resp *sdk.Response) error {
	var se stripeError
	if err := resp.Decode(&se); err != nil || se.Error.Message == "" {
		return sdk.Errorf("service_error", "Stripe %s answered HTTP %d", path, resp.Status)
	}
	e := se.Error
	code := e.Code
	if code == "" {
		code = e.Type
	}
	switch resp.Status {
	case 401:
		code = "unauthorized"
	case 403:
		code = "forbidden"
	}
	msg := "Stripe: " + e.Message
	var details []string
	for _, d := range [][2]string{{"type", e.Type}, {"param", e.Param}, {"decline_code", e.DeclineCode}, {"request", resp.Header("Request-Id")}} {
		if d[1] != "" {
			details = append(details, d[0]+" "+d[1])
		}
	}
	if pi := e.PaymentIntent; pi != nil {
		details = append(details, fmt.Sprintf("payment_intent %s is %s", pi.ID, pi.Status))
	}
	if len(details) > 0 {
		msg += " (" + strings.Join(details, ", ") + ")"
	}
	return sdk.Errorf(code, "%s", msg)
}

func setIf(form url.Values, k, v string) {
	if v != "" {
		form.Set(k, v)
	}
}

func setMetadata(form url.Values, md map[string]string) {
	for k, v := range md {
		form.Set("metadata["+k+"]", v)
	}
}

// audit records what was created. The object exists by then: failing the
// step over a lost audit event would only lose its output.
func audit(c *sdk.Call, event string, fields map[string]any) {
	if err := c.Audit(event, fields); err != nil {
		c.Log.Warn("audit event not recorded", "event", event, "error", err.Error())
	}
}
