package api

import (
	"net/http"

	"github.com/julienschmidt/httprouter"

	"tokenguard/app/account"
)

type signupRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
	Name     string `json:"name"`
}

// signup: POST /api/auth/signup {email,password,name} → 201 {token,user,workspace}.
func (a *API) signup(w http.ResponseWriter, r *http.Request, _ httprouter.Params) error {
	var req signupRequest
	if err := a.Decode(w, r, &req); err != nil {
		return err
	}
	s, err := a.acct.Signup(r.Context(), account.SignupInput{Email: req.Email, Password: req.Password, Name: req.Name}, ClientIP(r))
	if err != nil {
		return err
	}
	return Reply(w, http.StatusCreated, map[string]any{
		"token": s.Token, "user": userView(s.User), "workspace": workspaceView(s.Workspace),
	})
}

type loginRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

// login: POST /api/auth/login {email,password} → {token,user}.
func (a *API) login(w http.ResponseWriter, r *http.Request, _ httprouter.Params) error {
	var req loginRequest
	if err := a.Decode(w, r, &req); err != nil {
		return err
	}
	s, err := a.acct.Login(r.Context(), req.Email, req.Password, ClientIP(r))
	if err != nil {
		return err
	}
	return Reply(w, http.StatusOK, map[string]any{"token": s.Token, "user": userView(s.User)})
}

type passwordRequest struct {
	CurrentPassword string `json:"currentPassword"`
	NewPassword     string `json:"newPassword"`
}

// changePassword: POST /api/auth/password {currentPassword,newPassword} → {token,user}. Every
// earlier session, including the caller's, stops working; the response carries a fresh one.
func (a *API) changePassword(w http.ResponseWriter, r *http.Request, _ httprouter.Params, c Caller) error {
	var req passwordRequest
	if err := a.Decode(w, r, &req); err != nil {
		return err
	}
	s, err := a.acct.ChangePassword(r.Context(), c.Actor, req.CurrentPassword, req.NewPassword)
	if err != nil {
		return err
	}
	return Reply(w, http.StatusOK, map[string]any{"token": s.Token, "user": userView(s.User)})
}

// me: GET /api/me → {user,workspaces:[{id,name,role,…}]}.
func (a *API) me(w http.ResponseWriter, r *http.Request, _ httprouter.Params, c Caller) error {
	ws, err := a.acct.Workspaces(r.Context(), c.User.ID)
	if err != nil {
		return err
	}
	return Reply(w, http.StatusOK, map[string]any{"user": userView(c.User), "workspaces": mapList(ws, workspaceView)})
}
