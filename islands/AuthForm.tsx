/**
 * The passphrase forms: first-run setup (setup code + new passphrase twice), login, and
 * passphrase change. Errors are shown inline next to the field they concern (the server's
 * reason for a weak passphrase, a wrong setup code or passphrase) or above the form (locked
 * until a time, runtime unreachable). The passphrase travels only as the JSON body of a
 * same-origin POST; the session comes back as HttpOnly cookies.
 *
 * Written with `h()` (see LiveControls for why).
 * @module
 */
import { h, type JSX } from "preact";
import { useState } from "preact/hooks";
import { api, localTime } from "./api.ts";

/** Which form. */
export type AuthFormMode = "setup" | "login" | "change";

/** Props of {@link AuthForm}. */
export interface AuthFormProps {
  mode: AuthFormMode;
  /** Where to go after login (a same-site path, checked by the server). */
  next: string;
  /** Minimum characters of a new passphrase (shown and checked before sending). */
  minChars: number;
}

type Field = "setupCode" | "passphrase" | "confirm" | "current";
type Errors = Partial<Record<Field | "form", string>>;

const LABELS: Record<Field, string> = {
  setupCode: "Setup code",
  passphrase: "Passphrase",
  confirm: "Repeat the passphrase",
  current: "Current passphrase",
};

const FIELDS: Record<AuthFormMode, Field[]> = {
  setup: ["setupCode", "passphrase", "confirm"],
  login: ["passphrase"],
  change: ["current", "passphrase", "confirm"],
};

const SUBMIT: Record<AuthFormMode, string> = {
  setup: "Set passphrase and sign in",
  login: "Sign in",
  change: "Change passphrase",
};

/** Which field a server error code belongs to. */
const FIELD_OF_CODE: Record<string, Field> = {
  SETUP_CODE_INVALID: "setupCode",
  WEAK_PASSPHRASE: "passphrase",
};

/**
 * A passphrase form.
 * @param props mode, next path, minimum length
 * @returns the form
 */
export default function AuthForm({ mode, next, minChars }: AuthFormProps): JSX.Element {
  const [values, setValues] = useState<Record<Field, string>>({
    setupCode: "",
    passphrase: "",
    confirm: "",
    current: "",
  });
  const [errors, setErrors] = useState<Errors>({});
  const [isBusy, setBusy] = useState(false);
  const [done, setDone] = useState("");
  const isNew = mode !== "login";

  function check(): Errors {
    const found: Errors = {};
    for (const field of FIELDS[mode]) {
      if (values[field] === "") found[field] = `Enter the ${LABELS[field].toLowerCase()}`;
    }
    if (isNew && !found.passphrase && [...values.passphrase].length < minChars) {
      found.passphrase = `Use at least ${minChars} characters (a few unrelated words work well)`;
    }
    if (isNew && !found.confirm && values.confirm !== values.passphrase) {
      found.confirm = "The two passphrases differ";
    }
    return found;
  }

  async function submit(event: Event): Promise<void> {
    event.preventDefault();
    const found = check();
    setErrors(found);
    setDone("");
    if (Object.keys(found).length > 0) return;
    setBusy(true);
    const body = mode === "setup"
      ? { setupCode: values.setupCode, passphrase: values.passphrase }
      : mode === "login"
      ? { passphrase: values.passphrase }
      : { current: values.current, next: values.passphrase };
    const answer = await api(`/api/v1/auth/${mode}`, { method: "POST", body, isAuthCall: true });
    setBusy(false);
    if (answer.ok) {
      if (mode === "change") {
        setValues({ setupCode: "", passphrase: "", confirm: "", current: "" });
        setDone("Passphrase changed. Every other session was signed out.");
      } else {
        location.assign(mode === "login" ? next : "/");
      }
      return;
    }
    const lockedUntil = answer.body?.locked_until;
    const locked = typeof lockedUntil === "string"
      ? ` Try again after ${localTime(lockedUntil)}.`
      : "";
    if (answer.code === "WRONG_PASSPHRASE") {
      setErrors({ [mode === "change" ? "current" : "passphrase"]: "Wrong passphrase." + locked });
    } else if (Object.hasOwn(FIELD_OF_CODE, answer.code)) {
      setErrors({
        [FIELD_OF_CODE[answer.code] as Field]: answer.message + (locked && "." + locked),
      });
    } else if (answer.code === "ALREADY_CONFIGURED") {
      location.assign("/login");
    } else {
      setErrors({
        form: answer.code === "LOGIN_LOCKED"
          ? `Too many failed attempts.${locked}`
          : answer.message,
      });
    }
  }

  function input(field: Field): JSX.Element {
    const id = `auth-${field}`;
    const error = errors[field];
    return h(
      "div",
      { class: "field", key: field },
      h("label", { for: id }, LABELS[field]),
      field === "passphrase" && isNew
        ? h("p", { class: "hint", id: `${id}-hint` }, `At least ${minChars} characters.`)
        : null,
      h("input", {
        id,
        name: field,
        type: field === "setupCode" ? "text" : "password",
        autocomplete: field === "setupCode"
          ? "off"
          : field === "current" || mode === "login"
          ? "current-password"
          : "new-password",
        spellcheck: false,
        required: true,
        value: values[field],
        "aria-invalid": error ? "true" : undefined,
        "aria-describedby": error ? `${id}-error` : undefined,
        onInput: (e: Event) =>
          setValues({ ...values, [field]: (e.currentTarget as HTMLInputElement).value }),
      }),
      error ? h("p", { class: "field-error", id: `${id}-error` }, error) : null,
    );
  }

  return h(
    "form",
    { class: "auth-form", method: "post", onSubmit: submit, noValidate: true },
    errors.form ? h("p", { class: "form-error", role: "alert" }, errors.form) : null,
    done ? h("p", { class: "form-done", role: "status" }, done) : null,
    ...FIELDS[mode].map(input),
    h("button", { type: "submit", disabled: isBusy }, isBusy ? "Checking…" : SUBMIT[mode]),
  );
}
