"""The connections page of Airflow 3's React UI, as a person uses it: the selectors in one place.

Found by exploring the page (Airflow 3.3): the add and edit forms are a dialog (``[role=dialog]``) whose
standard fields are inputs named ``login``, ``password``, ...; the provider's fields are inputs named
``element_<field>`` under the "Extra Fields" accordion (a field with an ``enum`` is a react-select combobox
in an element with the id ``element_<field>``);
each table row has buttons labelled "Test Connection" and "Edit Connection"; results come as toasts
(``[data-scope=toast][data-part=root]`` with ``data-type`` success or error).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

DIALOG = "[role=dialog]"
TOAST = "[data-scope=toast][data-part=root]"
#: Seconds to wait for the page; a Test runs the hook against the sandbox inside the API server.
WAIT_SECONDS = 60


@dataclass(frozen=True)
class Toast:
    kind: str
    title: str
    description: str


class ConnectionsPage:
    """Drives ``/connections``; every step that changes the page waits for the change."""

    def __init__(self, driver: Any, base_url: str, screenshots: Path) -> None:
        self.driver = driver
        self.base_url = base_url
        self.screenshots = screenshots
        # React re-renders replace elements under our feet: a stale one is looked up again.
        self.wait = WebDriverWait(
            driver, WAIT_SECONDS, ignored_exceptions=(NoSuchElementException, StaleElementReferenceException)
        )

    def open(self) -> ConnectionsPage:
        self.driver.get(f"{self.base_url}/connections")
        self._visible(By.XPATH, "//button[contains(., 'Add Connection')]")
        return self

    def screenshot(self, name: str) -> Path:
        path = self.screenshots / f"{name}.png"
        self.driver.save_screenshot(str(path))
        return path

    # --- the form ----------------------------------------------------------------------------------------------

    def add(self, conn_id: str, type_label: str) -> None:
        """Open the add form, fill the id and pick the connection type by its display name."""
        self._clickable(By.XPATH, "//button[contains(., 'Add Connection')]").click()
        self._visible(By.CSS_SELECTOR, f"{DIALOG} input[name=connection_id]").send_keys(conn_id)
        self._choose(self._visible(By.CSS_SELECTOR, f"{DIALOG} input[role=combobox]"), type_label)
        self._visible(By.CSS_SELECTOR, f"{DIALOG} input[name=login]")

    def edit(self, conn_id: str) -> None:
        self._row_button(conn_id, "Edit Connection").click()
        self._visible(By.CSS_SELECTOR, f"{DIALOG} input[name=login]")

    def standard_fields(self) -> dict[str, str]:
        """The standard fields the form shows: input name -> its label."""

        def read(driver: Any) -> dict[str, str]:
            fields = {}
            for element in driver.find_elements(By.CSS_SELECTOR, f"{DIALOG} input[name], {DIALOG} textarea[name]"):
                name = element.get_attribute("name")
                if name in ("description", "host", "port", "login", "password", "schema"):
                    fields[name] = self._label(element)
            return fields

        return self.wait.until(read)

    def placeholder(self, name: str) -> str | None:
        return self._visible(By.CSS_SELECTOR, f"{DIALOG} input[name={name}]").get_attribute("placeholder")

    def fill(self, name: str, value: str) -> None:
        """Type into a standard field, replacing what it holds."""
        self._replace(self._visible(By.CSS_SELECTOR, f"{DIALOG} input[name={name}]"), value)

    def open_extra_fields(self) -> None:
        self._clickable(By.XPATH, "//*[@role='dialog']//button[normalize-space(.)='Extra Fields']").click()
        self._visible(By.CSS_SELECTOR, f"{DIALOG} input[name^=element_]:not([type=hidden])")

    def extra_fields(self) -> dict[str, tuple[str, str]]:
        """The provider's fields the form shows: field -> (label, help text)."""

        def read(driver: Any) -> dict[str, tuple[str, str]]:
            fields = {}
            for group in driver.find_elements(By.CSS_SELECTOR, f"{DIALOG} [data-scope=field][data-part=root]"):
                inner = group.find_elements(By.CSS_SELECTOR, "[name^=element_]")
                if inner:
                    name = inner[0].get_attribute("name").removeprefix("element_")
                    label = group.find_element(By.CSS_SELECTOR, "label").text.strip()
                    helper = group.find_elements(By.CSS_SELECTOR, "[data-part=helper-text]")
                    fields[name] = (label, helper[0].text.strip() if helper else "")
            return fields

        return self.wait.until(read)

    def fill_extra(self, name: str, value: str) -> None:
        self._replace(self._visible(By.CSS_SELECTOR, f"{DIALOG} input[name=element_{name}]"), value)

    def choose_extra(self, name: str, option_text: str) -> list[str]:
        """Pick an option of an enum field; returns every option the dropdown offered."""
        combobox = self._visible(By.CSS_SELECTOR, f"#element_{name} input[role=combobox]")
        combobox.click()
        options = [
            element.text
            for element in self.wait.until(
                lambda driver: driver.find_elements(By.CSS_SELECTOR, f"#element_{name} [role=option]")
            )
        ]
        self._choose(combobox, option_text)
        return options

    def save(self) -> None:
        self._clickable(By.XPATH, "//*[@role='dialog']//footer//button[contains(., 'Save')]").click()
        self.wait.until(expected_conditions.invisibility_of_element_located((By.CSS_SELECTOR, DIALOG)))

    # --- the table -----------------------------------------------------------------------------------------

    def test(self, conn_id: str) -> Toast:
        """Press the row's Test button and return the toast that answers it."""
        before = {toast.get_attribute("id") for toast in self.driver.find_elements(By.CSS_SELECTOR, TOAST)}
        self._row_button(conn_id, "Test Connection").click()

        def new_toast(driver: Any) -> Toast | None:
            for toast in reversed(driver.find_elements(By.CSS_SELECTOR, TOAST)):
                if toast.get_attribute("id") not in before:
                    return Toast(
                        kind=toast.get_attribute("data-type"),
                        title=toast.find_element(By.CSS_SELECTOR, "[data-part=title]").text,
                        description=toast.find_element(By.CSS_SELECTOR, "[data-part=description]").text,
                    )
            return None

        return self.wait.until(new_toast)

    # --- plumbing --------------------------------------------------------------------------------------------

    def _row_button(self, conn_id: str, label: str) -> WebElement:
        return self._clickable(By.XPATH, f"//tr[.//td[normalize-space(.)='{conn_id}']]//button[@aria-label='{label}']")

    def _label(self, element: WebElement) -> str:
        labels = self.driver.find_elements(By.CSS_SELECTOR, f"label[for='{element.get_attribute('id')}']")
        return labels[0].text.strip() if labels else ""

    def _choose(self, combobox: WebElement, option_text: str) -> None:
        combobox.send_keys(option_text)
        self.wait.until(
            lambda driver: driver.find_elements(By.XPATH, f"//*[@role='option'][contains(., '{option_text}')]")
        )
        combobox.send_keys(Keys.ENTER)

    def _replace(self, element: WebElement, value: str) -> None:
        element.send_keys(Keys.CONTROL, "a")
        element.send_keys(Keys.DELETE)
        element.send_keys(value)

    def _visible(self, by: str, selector: str) -> WebElement:
        return self.wait.until(expected_conditions.visibility_of_element_located((by, selector)))

    def _clickable(self, by: str, selector: str) -> WebElement:
        return self.wait.until(expected_conditions.element_to_be_clickable((by, selector)))
