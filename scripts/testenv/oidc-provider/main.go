// oidc-provider: the OpenID provider of test_sso.py. It is the example server of
// github.com/zitadel/oidc/v3 (example/server/main.go at OIDC_PROVIDER_VERSION), built from that
// module's exported example packages, except that it listens on 127.0.0.1 only: the example
// listens on every address of the machine, and every test server listens on loopback.
//
// Same interface as the example: PORT, USERS_FILE (its users, JSON) and REDIRECT_URI (comma
// separated) from the environment; clients "native", "web" and "api" (secret "secret"); issuer
// http://localhost:PORT/.
package main

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"

	"github.com/zitadel/oidc/v3/example/server/config"
	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
)

func main() {
	cfg := config.FromEnvVars(&config.Config{Port: config.DefaultIssuerPort})
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	issuer := fmt.Sprintf("http://localhost:%s/", cfg.Port)

	storage.RegisterClients(
		storage.NativeClient("native", cfg.RedirectURI...),
		storage.WebClient("web", "secret", cfg.RedirectURI...),
		storage.WebClient("api", "secret", cfg.RedirectURI...),
	)
	var users storage.UserStore
	if cfg.UsersFile == "" {
		users = storage.NewUserStore(issuer)
	} else {
		var err error
		if users, err = storage.StoreFromFile(cfg.UsersFile); err != nil {
			logger.Error("cannot read USERS_FILE", "file", cfg.UsersFile, "error", err)
			os.Exit(1)
		}
	}
	server := &http.Server{
		Addr:    net.JoinHostPort("127.0.0.1", cfg.Port),
		Handler: exampleop.SetupServer(issuer, storage.NewStorage(users), logger, false),
	}
	logger.Info("listening", "addr", server.Addr, "issuer", issuer)
	if err := server.ListenAndServe(); err != http.ErrServerClosed {
		logger.Error("server terminated", "error", err)
		os.Exit(1)
	}
}
