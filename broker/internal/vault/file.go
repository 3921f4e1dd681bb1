package vault

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"filippo.io/age"

	"aileron.dev/aileron/cas/atomicfile"
	"aileron.dev/aileron/cas/filelock"
)

// defaultTenant is the directory of the single-user tenant "".
const defaultTenant = "_default"

// maxRecordBytes bounds one decrypted record.
const maxRecordBytes = 1 << 20

// KeyConfig says where the vault's identity comes from.
type KeyConfig struct {
	// KeyFile is an age X25519 identity file (mode 0600). Default:
	// Dir/identity, created on first use.
	KeyFile string
	// Passphrase, if set, decrypts Dir/identity.age (an identity file
	// encrypted with age's scrypt passphrase mode), for servers that keep
	// no key on disk in the clear.
	Passphrase string
}

// FileBackend stores records as age-encrypted files under Dir.
type FileBackend struct {
	dir   string
	id    age.Identity
	recip age.Recipient
	lock  *filelock.Lock
}

// locked runs fn holding the vault's write lock: in this process and
// across processes.
func (b *FileBackend) locked(fn func() error) error {
	unlock, err := b.lock.Lock()
	if err != nil {
		return fmt.Errorf("lock vault: %w", err)
	}
	defer unlock()
	return fn()
}

// OpenFile opens (creating if needed) the vault in dir.
func OpenFile(dir string, kc KeyConfig) (*FileBackend, error) {
	if err := os.MkdirAll(filepath.Join(dir, "creds"), 0o700); err != nil {
		return nil, fmt.Errorf("vault dir: %w", err)
	}
	id, err := loadIdentity(dir, kc)
	if err != nil {
		return nil, err
	}
	return &FileBackend{dir: dir, id: id, recip: id.Recipient(), lock: filelock.New(filepath.Join(dir, ".lock"))}, nil
}

func loadIdentity(dir string, kc KeyConfig) (*age.X25519Identity, error) {
	if kc.Passphrase != "" {
		path := filepath.Join(dir, "identity.age")
		f, err := os.Open(path)
		if errors.Is(err, fs.ErrNotExist) {
			return createIdentity(path, kc.Passphrase)
		}
		if err != nil {
			return nil, fmt.Errorf("vault key: %w", err)
		}
		defer f.Close()
		sid, err := age.NewScryptIdentity(kc.Passphrase)
		if err != nil {
			return nil, err
		}
		r, err := age.Decrypt(f, sid)
		if err != nil {
			return nil, fmt.Errorf("vault key %s: wrong passphrase or corrupted file: %w", path, err)
		}
		b, err := io.ReadAll(io.LimitReader(r, 4096))
		if err != nil {
			return nil, fmt.Errorf("vault key %s: %w", path, err)
		}
		return parseIdentity(path, b)
	}
	path := kc.KeyFile
	if path == "" {
		path = filepath.Join(dir, "identity")
	}
	st, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) && kc.KeyFile == "" {
		return createIdentity(path, "")
	}
	if err != nil {
		return nil, fmt.Errorf("vault key: %w", err)
	}
	// Security: like ssh, refuse a private key others can read.
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("vault key %s is readable by others (mode %o): chmod 600 it", path, st.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("vault key: %w", err)
	}
	return parseIdentity(path, b)
}

func parseIdentity(path string, b []byte) (*age.X25519Identity, error) {
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "AGE-SECRET-KEY-") {
			id, err := age.ParseX25519Identity(line)
			if err != nil {
				return nil, fmt.Errorf("vault key %s: %w", path, err)
			}
			return id, nil
		}
	}
	return nil, fmt.Errorf("vault key %s holds no AGE-SECRET-KEY line", path)
}

func createIdentity(path, passphrase string) (*age.X25519Identity, error) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return nil, err
	}
	content := []byte("# aileron vault identity: only the broker reads this file\n" + id.String() + "\n")
	if passphrase != "" {
		rcp, err := age.NewScryptRecipient(passphrase)
		if err != nil {
			return nil, err
		}
		var buf bytes.Buffer
		w, err := age.Encrypt(&buf, rcp)
		if err != nil {
			return nil, err
		}
		w.Write(content)
		if err := w.Close(); err != nil {
			return nil, err
		}
		content = buf.Bytes()
	}
	err = publish(path, content)
	if errors.Is(err, fs.ErrExist) {
		// Another broker starting at once won: use its key.
		return loadIdentity(filepath.Dir(path), KeyConfig{KeyFile: path, Passphrase: passphrase})
	}
	if err != nil {
		return nil, fmt.Errorf("create vault key: %w", err)
	}
	return id, nil
}

// publish creates path holding content (mode 0600), whole or not at all:
// it writes and fsyncs a temp file, then links it into place, which fails
// with fs.ErrExist if path exists. Two brokers starting at once on a new
// home so agree on one key, and neither can read the other's half-written
// file (O_EXCL then write would let it).
func publish(path string, content []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*") // mode 0600
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // on failure; a no-op once linked and removed
	_, err = tmp.Write(content)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		return err
	}
	if err := os.Remove(tmp.Name()); err != nil {
		return err
	}
	return atomicfile.SyncDir(dir)
}

func (b *FileBackend) tenantDir(tenant string) string {
	if tenant == "" {
		tenant = defaultTenant
	}
	return filepath.Join(b.dir, "creds", tenant)
}

func (b *FileBackend) path(tenant, name string) (string, error) {
	if !ValidName(name) {
		return "", fmt.Errorf("credential name %q is not valid", name)
	}
	if tenant != "" && !ValidName(tenant) {
		return "", fmt.Errorf("tenant %q is not valid", tenant)
	}
	return filepath.Join(b.tenantDir(tenant), name+".age"), nil
}

// List implements Backend.
func (b *FileBackend) List(_ context.Context, tenant string) ([]Record, error) {
	if tenant != "" && !ValidName(tenant) {
		return nil, fmt.Errorf("tenant %q is not valid", tenant)
	}
	ents, err := os.ReadDir(b.tenantDir(tenant))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Record
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".age")
		if !ok || !e.Type().IsRegular() || !ValidName(name) {
			continue
		}
		r, err := b.read(filepath.Join(b.tenantDir(tenant), e.Name()))
		if err != nil {
			return nil, err
		}
		if r.Meta.Name != name || r.Meta.Tenant != tenant {
			// Security: a file copied or renamed from another tenant
			// or credential must not be accepted under this name.
			return nil, fmt.Errorf("vault file %s does not belong to %s/%s", e.Name(), tenant, name)
		}
		out = append(out, r)
	}
	return out, nil
}

// Get implements Backend.
func (b *FileBackend) Get(_ context.Context, tenant, name string) (Record, error) {
	p, err := b.path(tenant, name)
	if err != nil {
		return Record{}, err
	}
	r, err := b.read(p)
	if errors.Is(err, fs.ErrNotExist) {
		return Record{}, ErrNotFound
	}
	if err == nil && (r.Meta.Name != name || r.Meta.Tenant != tenant) {
		return Record{}, fmt.Errorf("vault file for %s does not belong to it", name)
	}
	return r, err
}

func (b *FileBackend) read(path string) (Record, error) {
	f, err := os.Open(path)
	if err != nil {
		return Record{}, err
	}
	defer f.Close()
	r, err := age.Decrypt(f, b.id)
	if err != nil {
		return Record{}, fmt.Errorf("decrypt %s: %w", filepath.Base(path), err)
	}
	data, err := io.ReadAll(io.LimitReader(r, maxRecordBytes+1))
	if err != nil {
		return Record{}, fmt.Errorf("decrypt %s: %w", filepath.Base(path), err)
	}
	if len(data) > maxRecordBytes {
		return Record{}, fmt.Errorf("vault file %s is too large", filepath.Base(path))
	}
	var rec Record
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rec); err != nil {
		return Record{}, fmt.Errorf("vault file %s: %w", filepath.Base(path), err)
	}
	return rec, nil
}

// Put implements Backend: encrypt, write a temp file, fsync, rename.
func (b *FileBackend) Put(_ context.Context, r Record) error {
	p, err := b.path(r.Meta.Tenant, r.Meta.Name)
	if err != nil {
		return err
	}
	return b.locked(func() error { return b.write(p, r) })
}

// Update implements Backend. The write lock is held while fn runs, so
// every writer in every process that shares the vault directory waits for
// it; fn should be bounded in time.
func (b *FileBackend) Update(_ context.Context, tenant, name string, fn func(Record) (Record, bool, error)) (Record, error) {
	p, err := b.path(tenant, name)
	if err != nil {
		return Record{}, err
	}
	var out Record
	err = b.locked(func() error {
		cur, err := b.read(p)
		if errors.Is(err, fs.ErrNotExist) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if cur.Meta.Name != name || cur.Meta.Tenant != tenant {
			return fmt.Errorf("vault file for %s does not belong to it", name)
		}
		next, changed, err := fn(cur)
		if err != nil {
			return err
		}
		if !changed {
			out = cur
			return nil
		}
		if next.Meta.Name != name || next.Meta.Tenant != tenant {
			return fmt.Errorf("vault update of %s must not rename it", name)
		}
		if err := next.Validate(); err != nil {
			return err
		}
		out = next
		return b.write(p, next)
	})
	return out, err
}

// write encrypts r to p (atomicfile creates the tenant's directory); the
// caller holds the write lock.
func (b *FileBackend) write(p string, r Record) error {
	plain, err := json.Marshal(r)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, b.recip)
	if err != nil {
		return err
	}
	if _, err := w.Write(plain); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	clear(plain)
	return atomicfile.WriteFile(p, buf.Bytes(), 0o600, "")
}

// Delete implements Backend.
func (b *FileBackend) Delete(_ context.Context, tenant, name string) error {
	p, err := b.path(tenant, name)
	if err != nil {
		return err
	}
	return b.locked(func() error {
		if err := os.Remove(p); errors.Is(err, fs.ErrNotExist) {
			return ErrNotFound
		} else if err != nil {
			return err
		}
		return atomicfile.SyncDir(filepath.Dir(p))
	})
}
