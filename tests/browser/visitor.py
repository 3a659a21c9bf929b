"""What a visitor does in NocoDB 0.301.3's pages, in Chromium: the selectors live here only."""

from __future__ import annotations

from pathlib import Path

from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as shown
from selenium.webdriver.support.ui import WebDriverWait

WAIT_S = 60.0

# NocoDB opens the file chooser from an <input type=file> it never attaches to the page, so
# a headless browser cannot reach it. Attaching that input instead of opening the native
# dialog lets the driver choose the file: the page then receives the real `change` event
# with a File read from disk, exactly as after a visitor's choice.
EXPOSE_FILE_CHOOSER = """
const click = HTMLInputElement.prototype.click;
HTMLInputElement.prototype.click = function () {
  if (this.type !== 'file') { return click.call(this); }
  this.setAttribute('data-file-chooser', '');
  document.body.appendChild(this);
};
"""


def wait(driver: WebDriver) -> WebDriverWait[WebDriver]:
    return WebDriverWait(driver, WAIT_S)


def submit_form(
    driver: WebDriver, form_url: str, politician: str, title: str, picture: Path
) -> None:
    """Fill the public form as a visitor does (title, politician, picture), submit, see success."""
    driver.get("about:blank")  # a fresh page load: the form URL is all in the #fragment
    driver.get(form_url)
    testid = "[data-testid=nc-form-input-cell-{}]"
    title_cell = wait(driver).until(
        shown.element_to_be_clickable((By.CSS_SELECTOR, testid.format("Title")))
    )
    title_cell.find_element(By.TAG_NAME, "input").send_keys(title)
    driver.find_element(By.CSS_SELECTOR, testid.format("Politician")).click()
    option = f"//*[contains(@class, 'nc-select-option-Politician-{politician}')]"
    wait(driver).until(shown.element_to_be_clickable((By.XPATH, option))).click()
    driver.execute_script(EXPOSE_FILE_CHOOSER)
    driver.find_element(By.CSS_SELECTOR, "[data-testid=attachment-cell-file-picker-button]").click()
    browse = (
        "//*[contains(@class, 'nc-modal-attachment-create')]"
        "//*[normalize-space(text())='browse files']"
    )
    wait(driver).until(shown.element_to_be_clickable((By.XPATH, browse))).click()
    chooser = wait(driver).until(
        shown.presence_of_element_located((By.CSS_SELECTOR, "input[data-file-chooser]"))
    )
    chooser.send_keys(str(picture))
    wait(driver).until(
        shown.element_to_be_clickable((By.CSS_SELECTOR, "[data-testid=nc-upload-file]"))
    ).click()
    wait(driver).until(
        shown.invisibility_of_element_located((By.CSS_SELECTOR, ".nc-modal-attachment-create"))
    )
    driver.find_element(By.CSS_SELECTOR, "[data-testid=shared-form-submit-button]").click()
    wait(driver).until(
        shown.visibility_of_element_located((By.CSS_SELECTOR, ".nc-shared-form-success-msg"))
    )


def gallery_cards(driver: WebDriver, gallery_url: str) -> list[WebElement]:
    """The cards of a shared gallery, once every card's cover picture has loaded."""
    driver.get("about:blank")
    driver.get(gallery_url)
    wait(driver).until(
        shown.presence_of_element_located((By.CSS_SELECTOR, "[data-testid=nc-gallery-wrapper]"))
    )
    wait(driver).until(
        shown.presence_of_element_located((By.CSS_SELECTOR, "[data-testid^=nc-gallery-card-]"))
    )
    loaded = (
        "return [...document.querySelectorAll('[data-testid^=nc-gallery-card-] img')]"
        ".every(image => image.complete && image.naturalWidth > 0)"
    )
    wait(driver).until(lambda d: d.execute_script(loaded))
    return driver.find_elements(By.CSS_SELECTOR, "[data-testid^=nc-gallery-card-]")


def picture_sources(card: WebElement) -> list[str]:
    """The card's loaded pictures (src of each image that actually decoded)."""
    return [
        str(img.get_attribute("src"))
        for img in card.find_elements(By.TAG_NAME, "img")
        if img.get_property("naturalWidth")
    ]
